#!/usr/bin/python3
"""Make a smaller variant of a model and measure what it costs in accuracy.

    /usr/bin/python3 models/optimize.py --model-dir DIR [--method all|M[,M...]] [--out-root OUT]
        [--epochs N] [--sparsity S] [--request REQ --references-dir REFS]

`thaw optimize` runs this script. It reads DIR (model.pt, config.json, and
the label and vocabulary files beside them) and writes each variant as a
model directory of its own, OUT/<base>-<method> (OUT defaults to DIR's
parent, the repository), holding model.pt, config.json, accuracy.json and
variant.json (how it was made and what it measured); it prints progress.
`all` (the default) makes every method that applies to the model's class.
With --request it also writes each variant's outputs for that KServe v2
request to REFS/<variant>.json.

Methods (which model classes each applies to):
  int8-dynamic    Linear layers to int8 weights, activations quantized per
                  call (RiskMLP, TextEncoder). No data needed to make it.
  int8-static     post-training static int8 (FX graph mode), calibrated on
                  --calibration training images (FashionNet).
  prune-magnitude global L1 magnitude pruning of conv and linear weights to
                  --sparsity, then --epochs of fine-tuning with the mask
                  held (FashionNet). The zeros stay dense: same file size
                  and, on dense CPU kernels, about the same speed.
  prune-channels  structured pruning: each inverted-residual block keeps
                  the (1 - sparsity) share of its expansion channels with
                  the largest BatchNorm scale, then --epochs of fine-tuning
                  (FashionNet). The layers really shrink.
  distill         a smaller student trained for --epochs on the teacher's
                  softened outputs and the labels over the training set:
                  FashionNet, SmallCNN (two plain convolutions and a small
                  dense head, 8 epochs); TextEncoder, half the layers, started from the
                  teacher's embeddings and every second layer (3 epochs).
  distill-int8    distill, then int8 on the student (FashionNet static,
                  TextEncoder dynamic).

Every int8 model is made and measured on the onednn quantized engine, the
one thaw's TorchScript backend selects before it loads a model (Debian's
torch 1.13 builds onednn and qnnpack; qnnpack is slower than fp32 here).
Accuracy is measured on the base model's held-out test split, for the
base (again, in the same way) and for the variant, each loaded back from
its saved file and frozen + optimized as thaw's backend does. Seeded.
"""
import argparse
import copy
import json
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_models as bm  # noqa: E402
import common  # noqa: E402

METHODS = {
    "int8-dynamic": ("RiskMLP", "TextEncoder"),
    "int8-static": ("FashionNet",),
    "prune-magnitude": ("FashionNet",),
    "prune-channels": ("FashionNet",),
    "distill": ("FashionNet", "TextEncoder"),
    "distill-int8": ("FashionNet", "TextEncoder"),
}
# The distilled fashion student (build_models.SmallCNN): conv 16, pool, conv 32, pool, dense 64, dense 10.
# A narrower MobileNet-style student (one inverted-residual block per stage, 46k parameters) lost 0.32 point and ran
# b1 at 0.59x of the teacher through thaw; this one measured 0.904 (-0.58 point) and 3.5x faster per call in Python.
STUDENT = {"channels": (16, 32), "hidden": 64}


def log(msg):
    print(f"[optimize] {msg}", flush=True)


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()


# --------------------------------------------------------------------------
# The base model and its data
# --------------------------------------------------------------------------

class Task:
    """The base model as an nn.Module, and its train and test data."""

    def __init__(self, model_dir):
        self.dir = model_dir
        self.student = None  # (module, how), once distilled
        self.config = json.load(open(os.path.join(model_dir, "config.json")))
        if self.config.get("backend", "torchscript") != "torchscript":
            raise SystemExit(f"{model_dir}: optimize works on TorchScript models; this one's backend is "
                             f"'{self.config['backend']}'")
        model_path = os.path.join(model_dir, self.config.get("model_file", "model.pt"))
        try:
            self.scripted = torch.jit.load(model_path)
        except (RuntimeError, ValueError) as e:  # a traceback helps no one here: say which file and why
            raise SystemExit(f"{model_path}: not a TorchScript model thaw optimize can read: {str(e).splitlines()[0]}")
        self.kind = self.scripted.original_name
        state = self.scripted.state_dict()
        if self.kind == "FashionNet":
            self.module = bm.FashionNet(0.0, 1.0)
            self.load_fashion()
        elif self.kind == "TextEncoder":
            vocab = read_lines(os.path.join(model_dir, "vocab.txt"))
            self.num_classes = len(read_lines(os.path.join(model_dir, "labels.txt")))
            self.module = bm.TextEncoder(len(vocab), self.num_classes)
            self.load_text(vocab)
        elif self.kind == "RiskMLP":
            self.module = bm.RiskMLP(np.zeros(30, np.float32), np.ones(30, np.float32))
            x_tr, x_te, y_tr, y_te = bm.fraud_data()
            self.train = (torch.from_numpy(x_tr), torch.from_numpy(y_tr))
            self.test_batches = [(torch.from_numpy(x_te), torch.from_numpy(y_te))]
        else:
            raise SystemExit(f"{model_dir}: optimize knows the example models' classes (FashionNet, TextEncoder, "
                             f"RiskMLP) and their data; this model's class is '{self.kind}'")
        self.module.load_state_dict(state)
        self.module.eval()

    def load_fashion(self):
        xt, yt, xe, ye = bm.fashion_data()
        self.train = (xt, yt)
        self.test_batches = [(xe[i:i + 1000], ye[i:i + 1000]) for i in range(0, len(xe), 1000)]

    def load_text(self, vocab):
        index = {w: i for i, w in enumerate(vocab)}
        _, train, test = bm.load_text_dataset()
        x_te = [bm.encode(t, index) for t, _ in test]
        y_te = torch.tensor([y for _, y in test], dtype=torch.int64)
        self.train = ([bm.encode(t, index) for t, _ in train], torch.tensor([y for _, y in train], dtype=torch.int64))
        self.test_batches = [(bm.pad_batch(x_te[i:i + 256]), y_te[i:i + 256]) for i in range(0, len(x_te), 256)]


# --------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------

def int8_dynamic(task, args):
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(task.module), {nn.Linear}, dtype=torch.qint8), {
        "layers": "Linear", "weights": "int8 per tensor", "activations": "quantized per call"}


def int8_static(module, task, args):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    xt, _ = task.train
    gen = torch.Generator().manual_seed(common.SEED)
    idx = torch.randperm(len(xt), generator=gen)[:args.calibration]
    prepared = prepare_fx(copy.deepcopy(module).eval(), get_default_qconfig_mapping(common.QUANTIZED_ENGINE), (xt[:1],))
    with torch.no_grad():
        for i in range(0, len(idx), 256):
            prepared(xt[idx[i:i + 256]])
    log(f"calibrated on {len(idx)} training images")
    # Traced, not scripted: FX's converted module scripts poorly; the CNN has no data-dependent control flow.
    return torch.jit.trace(convert_fx(prepared), xt[:1]), {
        "scheme": "FX graph mode post-training static", "qconfig": f"default ({common.QUANTIZED_ENGINE})",
        "calibration_images": len(idx)}


def train_epochs(model, task, epochs, lr, loss_fn, tag):
    """Fine-tune or train `model` as fashion was trained (build_models.train_fashion); seeded."""
    xt, yt = task.train
    return bm.train_fashion(model, xt, yt, epochs, lr, loss_fn, f"optimize: {tag}")


def prune_magnitude(task, args):
    import torch.nn.utils.prune as prune

    model = copy.deepcopy(task.module)
    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=args.sparsity)
    train_epochs(model, task, args.epochs or 1, 1e-3, bm.fashion_loss, "fine-tune")
    for m, name in params:
        prune.remove(m, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in params)
    total = sum(m.weight.numel() for m, _ in params)
    return torch.jit.script(model), {"sparsity_target": args.sparsity, "weights_zero": round(zeros / total, 4),
                                     "scope": "global L1 over conv and linear weights", "fine_tune_epochs": args.epochs or 1}


def keep_channels(conv_in, bn_in, dw, bn_dw, conv_out, keep):
    """New modules of an expansion block that keep only the hidden channels `keep`."""
    k = len(keep)
    expand = nn.Conv2d(conv_in.in_channels, k, 1, bias=False)
    expand.weight.data = conv_in.weight.data[keep].clone()
    depthwise = nn.Conv2d(k, k, dw.kernel_size, dw.stride, dw.padding, groups=k, bias=False)
    depthwise.weight.data = dw.weight.data[keep].clone()
    project = nn.Conv2d(k, conv_out.out_channels, 1, bias=False)
    project.weight.data = conv_out.weight.data[:, keep].clone()
    bns = []
    for bn in (bn_in, bn_dw):
        new = nn.BatchNorm2d(k)
        for name in ("weight", "bias"):
            getattr(new, name).data = getattr(bn, name).data[keep].clone()
        new.running_mean.data = bn.running_mean.data[keep].clone()
        new.running_var.data = bn.running_var.data[keep].clone()
        bns.append(new)
    return expand, bns[0], depthwise, bns[1], project


def prune_channels(task, args):
    model = copy.deepcopy(task.module)
    before = sum(p.numel() for p in model.parameters())
    blocks = 0
    for m in model.modules():
        if not isinstance(m, bm.InvertedResidual):
            continue
        layers = list(m.block)
        if len(layers) != 8:  # no expansion conv (expand == 1): nothing to shrink
            continue
        conv_in, bn_in, act1, dw, bn_dw, act2, conv_out, bn_out = layers
        hidden = conv_in.out_channels
        k = max(1, round(hidden * (1 - args.sparsity)))
        keep = torch.argsort(bn_in.weight.detach().abs(), descending=True)[:k].sort().values
        expand, bn1, depthwise, bn2, project = keep_channels(conv_in, bn_in, dw, bn_dw, conv_out, keep)
        m.block = nn.Sequential(expand, bn1, act1, depthwise, bn2, act2, project, bn_out)
        blocks += 1
    after = sum(p.numel() for p in model.parameters())
    log(f"channels: {blocks} blocks shrunk, parameters {before} -> {after}")
    train_epochs(model, task, args.epochs or 1, 1e-3, bm.fashion_loss, "fine-tune")
    return torch.jit.script(model), {"sparsity_target": args.sparsity, "blocks_shrunk": blocks,
                                     "scope": "expansion channels of each inverted-residual block, by |BatchNorm scale|",
                                     "fine_tune_epochs": args.epochs or 1}


def kd_loss(logits, teacher_logits, y, temperature, alpha):
    soft = F.softmax(teacher_logits / temperature, dim=1)
    kd = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean") * temperature ** 2
    return alpha * kd + (1 - alpha) * F.cross_entropy(logits, y)


def distill_fashion(task, args):
    teacher = task.module
    student = bm.SmallCNN(float(teacher.mean), float(teacher.std), **STUDENT)
    temperature, alpha, epochs = 4.0, 0.7, args.epochs or 8

    def loss_fn(model, x, y):
        with torch.no_grad():
            teacher_logits = teacher(x)
        return kd_loss(model(x), teacher_logits, y, temperature, alpha)

    train_epochs(student, task, epochs, 4e-3, loss_fn, "distill")
    return student, {"student": {"architecture": "SmallCNN: conv3x3 16 + BN + ReLU + maxpool, conv3x3 32 + BN + "
                                                 "ReLU + maxpool, dense 64 + ReLU, dense 10",
                                 "channels": list(STUDENT["channels"]), "hidden": STUDENT["hidden"]},
                     "temperature": temperature, "soft_weight": alpha, "epochs": epochs,
                     "teacher_parameters": count(teacher)}


def distill_text(task, args):
    """A 2-layer student of the 4-layer encoder: the teacher's embeddings, pooling and classifier, and its
    layers 2 and 4 as a start, then trained on the teacher's outputs and the labels."""
    teacher = task.module
    layers = len(teacher.layers)
    student = bm.TextEncoder(teacher.tokens.num_embeddings, teacher.classifier.out_features, layers=layers // 2)
    picked = {i: 2 * i + 1 for i in range(layers // 2)}
    state = {}
    for key, value in teacher.state_dict().items():
        if key.startswith("layers."):
            index = int(key.split(".")[1])
            mine = [i for i, t in picked.items() if t == index]
            if not mine:
                continue
            key = f"layers.{mine[0]}." + key.split(".", 2)[2]
        state[key] = value
    student.load_state_dict(state)
    temperature, alpha, epochs, batch, lr = 2.0, 0.7, args.epochs or 3, 32, 2e-4
    x_tr, y_tr = task.train
    steps = epochs * ((len(x_tr) + batch - 1) // batch)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))

    def loss_fn(model, ids, y):
        with torch.no_grad():
            teacher_logits = teacher(ids)
        return kd_loss(model(ids), teacher_logits, y, temperature, alpha)

    bm.train_text(student, x_tr, y_tr, epochs, batch, opt, sched, loss_fn, "optimize: distill")
    return student, {"student": {"layers": layers // 2, "initialised_from_teacher_layers": [t + 1 for t in picked.values()]},
                     "temperature": temperature, "soft_weight": alpha, "epochs": epochs,
                     "teacher_parameters": count(teacher)}


def count(module):
    return sum(p.numel() for p in module.parameters())


def make_variant(task, args, method):
    """(a ScriptModule, how it was made, the quantized engine or None, its weights before any int8 packing)."""
    base_params = count(task.module)
    if method == "int8-dynamic":
        q, how = int8_dynamic(task, args)
        return torch.jit.script(q), how, common.QUANTIZED_ENGINE, base_params
    if method == "int8-static":
        m, how = int8_static(task.module, task, args)
        return m, how, common.QUANTIZED_ENGINE, base_params
    if method in ("prune-magnitude", "prune-channels"):
        m, how = (prune_magnitude if method == "prune-magnitude" else prune_channels)(task, args)
        return m, how, None, count(m)
    if task.student is None:  # distill and distill-int8 share one student
        task.student = (distill_fashion if task.kind == "FashionNet" else distill_text)(task, args)
    student, how = task.student
    if method == "distill":
        return torch.jit.script(student), how, None, count(student)
    if task.kind == "FashionNet":
        m, how_q = int8_static(student, task, args)
    else:
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(student), {nn.Linear}, dtype=torch.qint8)
        m, how_q = torch.jit.script(q), {"layers": "Linear", "weights": "int8 per tensor"}
    return m, {**how, "int8": how_q}, common.QUANTIZED_ENGINE, count(student)


# --------------------------------------------------------------------------

def write_variant(task, args, method, base_acc, out_root):
    base_dir, base_name = task.dir, os.path.basename(task.dir)
    name = f"{base_name}-{method}"
    out = os.path.join(out_root, name)
    if out == base_dir:
        raise SystemExit("the variant's directory must not be the base model's")
    log(f"{base_name} ({task.kind}) -> {name} by {method}, into {out}")
    common.seed_everything()
    t0 = time.time()
    scripted, how, engine, params = make_variant(task, args, method)
    made_s = time.time() - t0
    os.makedirs(out, exist_ok=True)
    model_file = task.config.get("model_file", "model.pt")
    path = os.path.join(out, model_file)
    torch.jit.save(scripted, path)
    for f in os.listdir(base_dir):  # labels, vocabulary, and whatever else the config names
        src = os.path.join(base_dir, f)
        if f not in (model_file, "config.json", "accuracy.json", "variant.json") and os.path.isfile(src):
            shutil.copyfile(src, os.path.join(out, f))
    common.write_json(os.path.join(out, "config.json"), task.config)

    acc, n = bm.accuracy_of_saved(path, task.test_batches)
    base_info = {}
    if os.path.exists(os.path.join(base_dir, "accuracy.json")):
        base_info = json.load(open(os.path.join(base_dir, "accuracy.json")))
    variant = {
        "base": base_name,
        "variant": name,
        "method": method,
        "how": how,
        "quantized_engine": engine,
        "dataset": base_info.get("dataset", ""),
        "test_samples": n,
        "test_accuracy": round(acc, 4),
        "base_test_accuracy": round(base_acc, 4),
        "accuracy_delta_points": round((acc - base_acc) * 100, 2),
        "parameters": params,  # an int8 variant's are the float model's, packed
        "base_parameters": count(task.module),
        "file_bytes": os.path.getsize(path),
        "base_file_bytes": os.path.getsize(os.path.join(base_dir, model_file)),
        "made_in_s": round(made_s, 1),
        "made_by": "thaw optimize (models/optimize.py)",
        "seed": common.SEED,
        "torch": torch.__version__,
    }
    common.write_json(os.path.join(out, "variant.json"), variant)
    common.write_json(os.path.join(out, "accuracy.json"), {
        "dataset": variant["dataset"], "test_samples": n, "test_accuracy": variant["test_accuracy"],
        "trained_by": variant["made_by"], "seed": common.SEED})
    if args.request:
        request = json.load(open(args.request))
        inputs = [common.tensor_from_v2(t) for t in request["inputs"]]
        out_tensor, _, _ = common.run_saved(path, inputs)
        output_name = task.config["outputs"][0]["name"]
        common.write_json(os.path.join(args.references_dir, f"{name}.json"),
                          {"model": name, "outputs": [common.v2_tensor(output_name, out_tensor.contiguous())],
                           "predicted": [int(i) for i in out_tensor.argmax(dim=1).tolist()]})
    log(f"{name}: test accuracy {acc:.4f} (base {base_acc:.4f}, {variant['accuracy_delta_points']:+.2f} points) "
        f"on {n}; {params} parameters (base {variant['base_parameters']}); "
        f"{variant['file_bytes']} bytes (base {variant['base_file_bytes']}); made in {made_s:.0f}s")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--method", default="all", help="all, or one or more of " + ", ".join(sorted(METHODS)))
    parser.add_argument("--out-root", default=None, help="where variant directories go (default: the model's parent)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (distill: 8 for FashionNet, 3 for TextEncoder; pruning fine-tune: 1)")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--calibration", type=int, default=2048)
    parser.add_argument("--request", default=None, help="a KServe v2 request for the base model")
    parser.add_argument("--references-dir", default=None, help="where each variant's outputs for --request go")
    args = parser.parse_args()
    if not 0 < args.sparsity < 1:
        raise SystemExit(f"--sparsity must be in (0, 1), got {args.sparsity}")
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f"--epochs must be >= 1, got {args.epochs}")
    if args.calibration < 1:
        raise SystemExit(f"--calibration must be >= 1, got {args.calibration}")
    if (args.request is None) != (args.references_dir is None):
        raise SystemExit("--request and --references-dir go together")

    torch.backends.quantized.engine = common.QUANTIZED_ENGINE
    base_dir = os.path.abspath(args.model_dir.rstrip("/"))
    if not os.path.isfile(os.path.join(base_dir, "config.json")):
        raise SystemExit(f"{base_dir}: no config.json; --model-dir names a model directory")
    task = Task(base_dir)
    applicable = [m for m, kinds in METHODS.items() if task.kind in kinds]
    methods = applicable if args.method == "all" else args.method.split(",")
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method '{m}'; the methods: {', '.join(sorted(METHODS))}")
        if m not in applicable:
            raise SystemExit(f"{m} applies to {', '.join(METHODS[m])} models; "
                             f"'{os.path.basename(base_dir)}' is a {task.kind} (its methods: {', '.join(applicable)})")
    out_root = os.path.abspath(args.out_root or os.path.dirname(base_dir))
    log("measuring the base model's test accuracy on its held-out split ...")
    base_acc, n = bm.accuracy_of_saved(os.path.join(base_dir, task.config.get("model_file", "model.pt")), task.test_batches)
    log(f"{os.path.basename(base_dir)}: test accuracy {base_acc:.4f} on {n}")
    made = [write_variant(task, args, m, base_acc, out_root) for m in methods]
    print(json.dumps({"variant_dirs": made}))


if __name__ == "__main__":
    main()
