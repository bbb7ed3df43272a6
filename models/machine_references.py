#!/usr/bin/python3
"""Outputs of example models computed on this machine, for the tests.

Int8 kernels give results that depend on the CPU: onednn's AVX2 and AVX-512
paths round activations differently (up to 0.08 on a fashion logit), so a
reference computed on another machine cannot be matched to 1e-4. For each
MODEL=REQUEST pair this runs examples/requests/REQUEST.json through
examples/models/MODEL/model.pt as the backend does (frozen,
optimize_for_inference, the onednn quantized engine) and writes
OUT_DIR/MODEL.json in the layout of examples/references/.

    /usr/bin/python3 models/machine_references.py --out build/machine-references \
        fashion-int8-static=fashion textenc-int8-dynamic=textenc
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for MODEL.json")
    parser.add_argument("pairs", nargs="+", metavar="MODEL=REQUEST")
    args = parser.parse_args()
    torch.backends.quantized.engine = common.QUANTIZED_ENGINE
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for pair in args.pairs:
        model, sep, request_name = pair.partition("=")
        if not sep or not model or not request_name:
            raise SystemExit(f"'{pair}': expected MODEL=REQUEST")
        config = json.load(open(os.path.join(EXAMPLES, "models", model, "config.json")))
        request = json.load(open(os.path.join(EXAMPLES, "requests", request_name + ".json")))
        by_name = {t["name"]: common.tensor_from_v2(t) for t in request["inputs"]}
        inputs = [by_name[spec["name"]] for spec in config["inputs"]]
        out, _, _ = common.run_saved(os.path.join(EXAMPLES, "models", model, config.get("model_file", "model.pt")),
                                     inputs)
        common.write_json(os.path.join(args.out, model + ".json"),
                          {"model": model, "request": request_name, "computed_on": "this machine",
                           "outputs": [common.v2_tensor(config["outputs"][0]["name"], out.contiguous())],
                           "predicted": [int(i) for i in out.argmax(dim=1).tolist()]})


if __name__ == "__main__":
    main()
