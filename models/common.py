"""Helpers shared by build_models.py and make_large_model.py.

They write the files the server and its tests read for each example model:
config.json, accuracy.json, the KServe v2 sample request and the reference
outputs computed from the saved TorchScript file.
"""

import json
import os
import random

import numpy as np
import torch

SEED = 0

# The quantized engine int8 variants are made and run on: the one the C++
# backend selects on x86 (src/backend/torch_backend.cc).
QUANTIZED_ENGINE = "onednn"

# Server-side settings shared by every example model; per-model overrides are
# passed to write_config().
DEFAULT_CONFIG = {
    "memory_mb": 512,
    "timeout_ms": 5000,
    "max_concurrency": 2,
    "instance_concurrency": 1,
    "min_instances": 0,
    "keep_alive_s": 600,
    "max_queue": 128,
    "threads": 1,
}


def seed_everything(seed=SEED):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)


def f32_list(values):
    """Flat list of Python floats that print in the shortest form which still
    reads back as exactly the same float32."""
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    return [float(str(v)) for v in arr]


def write_json(path, obj, compact=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        if compact:
            json.dump(obj, f, separators=(",", ":"))
        else:
            json.dump(obj, f, indent=2)
        f.write("\n")


def write_config(model_dir, inputs, outputs, **overrides):
    """inputs/outputs: lists of (name, datatype, shape); an input may add a 4th item, its format (NCHW) or its
    tokenizer (a dict), an output its labels file (one class name per line, for the classification extension)."""
    cfg = {
        "backend": "torchscript",
        "model_file": "model.pt",
        "inputs": [{"name": t[0], "datatype": t[1], "shape": list(t[2]),
                    **({("tokenizer" if isinstance(t[3], dict) else "format"): t[3]} if len(t) > 3 else {})}
                   for t in inputs],
        "outputs": [{"name": t[0], "datatype": t[1], "shape": list(t[2]), **({"labels": t[3]} if len(t) > 3 else {})}
                    for t in outputs],
    }
    cfg.update(DEFAULT_CONFIG)
    cfg.update(overrides)
    # One line per tensor and per setting, to keep the file easy to read.
    lines = []
    for key, value in cfg.items():
        if isinstance(value, list):
            items = ",\n".join("    " + json.dumps(v) for v in value)
            lines.append(f'  "{key}": [\n{items}\n  ]')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    json.loads(text)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        f.write(text)


def save_scripted(module, path):
    """Script (not freeze) an eval-mode module and save it."""
    module.eval()
    scripted = torch.jit.script(module)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.jit.save(scripted, path)
    return scripted


def run_saved(model_path, inputs):
    """Load the saved file, run it as is and after freeze +
    optimize_for_inference (what the C++ backend does). Returns
    (optimized_output, max_abs_diff, max_abs_output)."""
    m = torch.jit.load(model_path, map_location="cpu")
    m.eval()
    with torch.no_grad():
        plain = m(*inputs)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(m))
        opt = frozen(*inputs)
    diff = (plain - opt).abs().max().item()
    return opt, diff, plain.abs().max().item()


def v2_tensor(name, tensor):
    if tensor.dtype == torch.float32:
        dt, data = "FP32", f32_list(tensor.numpy())
    elif tensor.dtype == torch.int64:
        dt, data = "INT64", [int(v) for v in tensor.reshape(-1).tolist()]
    else:
        raise ValueError(f"unsupported dtype {tensor.dtype}")
    return {"name": name, "shape": list(tensor.shape), "datatype": dt, "data": data}


def tensor_from_v2(t):
    """A KServe v2 JSON input tensor (FP32 or INT64, data flat) as a torch tensor."""
    dtype = {"FP32": torch.float32, "INT64": torch.int64}.get(t["datatype"])
    if dtype is None:
        raise ValueError(f"unsupported datatype {t['datatype']}")
    return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])


def write_request_and_reference(out_root, name, input_names, inputs, output_name,
                                labels, tolerance=1e-5):
    """Write examples/requests/<name>.json and examples/references/<name>.json.

    The reference is computed from the saved model.pt after freezing and
    optimize_for_inference. The unfrozen output must agree within
    `tolerance` (absolute) scaled by max(1, |largest output|)."""
    model_path = os.path.join(out_root, "models", name, "model.pt")
    out, diff, scale = run_saved(model_path, inputs)
    limit = tolerance * max(1.0, scale)
    print(f"[{name}] frozen+optimized vs plain: max |diff| = {diff:.3g} "
          f"(max |output| = {scale:.3g}, limit {limit:.3g})")
    if not diff <= limit:
        raise SystemExit(f"[{name}] frozen output differs from plain output by {diff}")
    request = {
        "id": f"{name}-1",
        "inputs": [v2_tensor(n, t) for n, t in zip(input_names, inputs)],
    }
    write_json(os.path.join(out_root, "requests", f"{name}.json"), request, compact=True)
    predicted = [int(i) for i in out.argmax(dim=1).tolist()]
    reference = {
        "model": name,
        "outputs": [v2_tensor(output_name, out.contiguous())],
        "labels": labels,
        "predicted": predicted,
    }
    write_json(os.path.join(out_root, "references", f"{name}.json"), reference, compact=True)
    print(f"[{name}] reference predicted={predicted} labels={labels}")
    return out
