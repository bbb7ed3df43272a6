#!/usr/bin/python3
"""End-to-end test of `thaw init` with the real binary and Debian's python3-torch.

Builds two small PyTorch models at test time: a two-input MLP with a tuple
output, traced (its shapes read from the graph), and a scripted model with
data-dependent control flow and an INT64 input (shapes from --example-input,
a v2 request). `thaw init` writes a repository; `thaw serve` serves it with
no edits; the sample request.json (sent with curl -d @, as init prints) and
a three-row request (urllib) must give the eager model's outputs. A file
whose zip claims a newer TorchScript format, a torch.save state_dict, a
legacy pickle and a missing file each fail with a message naming the file and
the fix and exit 1 (not a crash); an existing model directory is kept
without --force. Prints "N passed, N failed" and exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import THAW, assert_close, check, finish, free_port, run_thaw, stop_server  # noqa: E402

TMP = tempfile.mkdtemp(prefix="thaw_e2e_init_")
REPO = os.path.join(TMP, "models")


class TwoInputMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 16)
        self.b = torch.nn.Linear(3, 16)
        self.head = torch.nn.Linear(16, 2)

    def forward(self, features, extra):
        hidden = torch.relu(self.a(features) + self.b(extra))
        return self.head(hidden), torch.sigmoid(hidden.sum(1, keepdim=True))


class ScriptedScorer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 6)
        self.out = torch.nn.Linear(6, 3)

    def forward(self, ids, scale):
        pooled = self.embed(ids).mean(1)
        if bool(scale.sum() > 0):  # data-dependent: survives torch.jit.script, not torch.jit.trace
            pooled = pooled * scale
        return torch.softmax(self.out(pooled), 1)


def thaw(*args):
    return run_thaw(*args, cwd=TMP, timeout=300)


torch.manual_seed(0)
MLP = TwoInputMLP().eval()
SCORER = ScriptedScorer().eval()
MLP_FILE = os.path.join(TMP, "mlp.pt")
SCORER_FILE = os.path.join(TMP, "scorer.pt")


def export_models():
    torch.jit.trace(MLP, (torch.ones(2, 4), torch.ones(2, 3))).save(MLP_FILE)
    torch.jit.script(SCORER).save(SCORER_FILE)
    with open(os.path.join(TMP, "scorer-example.json"), "w") as f:
        json.dump({"inputs": [{"name": "ids", "datatype": "INT64", "shape": [2, 5], "data": [1] * 10},
                              {"name": "scale", "datatype": "FP32", "shape": [2, 1], "data": [1.0, 1.0]}]}, f)


def init_traced_mlp():
    run = thaw("init", MLP_FILE, "--repo", REPO)
    assert run.returncode == 0, run.stderr
    assert "thaw serve --repo " + REPO in run.stdout, run.stdout
    assert f"curl -s -H 'Content-Type: application/json' -d @{REPO}/mlp/request.json" in run.stdout, run.stdout
    config = json.load(open(os.path.join(REPO, "mlp", "config.json")))
    assert config == {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]},
                   {"name": "extra", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "output__0", "datatype": "FP32", "shape": [-1, 2]},
                    {"name": "output__1", "datatype": "FP32", "shape": [-1, 1]}]}, config


def init_scripted_with_example():
    run = thaw("init", SCORER_FILE, "--name", "scorer", "--repo", REPO, "--example-input", "scorer-example.json")
    assert run.returncode == 0, run.stderr
    config = json.load(open(os.path.join(REPO, "scorer", "config.json")))
    assert config["inputs"] == [{"name": "ids", "datatype": "INT64", "shape": [-1, 5]},
                                {"name": "scale", "datatype": "FP32", "shape": [-1, 1]}], config
    assert config["outputs"] == [{"name": "output__0", "datatype": "FP32", "shape": [-1, 3]}], config


def existing_directory_needs_force():
    before = open(os.path.join(REPO, "mlp", "config.json")).read()
    run = thaw("init", MLP_FILE, "--repo", REPO)
    assert run.returncode == 1 and "exists; --force" in run.stderr, (run.returncode, run.stderr)
    run = thaw("init", MLP_FILE, "--repo", REPO, "--force")
    assert run.returncode == 0, run.stderr
    assert open(os.path.join(REPO, "mlp", "config.json")).read() == before


def expect_refused(path, *phrases):
    run = thaw("init", path, "--repo", os.path.join(TMP, "refused"))
    assert run.returncode == 1, f"exit {run.returncode} (a crash is negative or > 1): {run.stderr}"
    assert "Traceback" not in run.stderr and "signal" not in run.stderr, run.stderr
    for phrase in (os.path.basename(path),) + phrases:
        assert phrase in run.stderr, f"{phrase!r} not in {run.stderr!r}"
    assert not os.path.exists(os.path.join(TMP, "refused")), "a refused file wrote a model directory"


def newer_format_refused():
    newer = os.path.join(TMP, "newer.pt")
    with zipfile.ZipFile(MLP_FILE) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("/version"):
                data = b"11\n"  # one past what libtorch 1.13 reads
            dst.writestr(item, data)
    expect_refused(newer, "newer torch", "version 11", "up to 10", "torch 1.13")


def state_dict_refused():
    path = os.path.join(TMP, "weights.pt")
    torch.save(MLP.state_dict(), path)
    expect_refused(path, "is not TorchScript", "state_dict", "torch.jit.trace", "torch.jit.script")
    legacy = os.path.join(TMP, "legacy.pt")
    torch.save(MLP, legacy, _use_new_zipfile_serialization=False)
    expect_refused(legacy, "is not TorchScript", "not a zip archive")


def missing_file_refused():
    expect_refused(os.path.join(TMP, "absent.pt"), "not found")


def infer(base, model, body):
    req = urllib.request.Request(f"{base}/v2/models/{model}/infer", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=60).read())


def served_outputs_match_python():
    port = free_port()
    log = open(os.path.join(TMP, "server.log"), "w")
    server = subprocess.Popen([THAW, "serve", "--repo", REPO, "--port", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(base + "/v2/health/ready", timeout=5).status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline and server.poll() is None, "server not ready in 60 s"
            time.sleep(0.05)

        # The sample request exactly as init's next steps send it.
        curl = subprocess.run(["curl", "-s", "-H", "Content-Type: application/json", "-d", "@" + os.path.join(REPO, "mlp", "request.json"),
                               f"{base}/v2/models/mlp/infer"], capture_output=True, text=True, timeout=60)
        answer = json.loads(curl.stdout)
        with torch.no_grad():
            want = MLP(torch.full((1, 4), 0.5), torch.full((1, 3), 0.5))
        for i, ref in enumerate(want):
            got = answer["outputs"][i]
            assert got["name"] == f"output__{i}" and got["shape"] == list(ref.shape), got
            assert_close(got["data"], ref.flatten().tolist(), f"mlp output__{i}")

        features, extra = torch.randn(3, 4), torch.randn(3, 3)
        answer = infer(base, "mlp", {"inputs": [
            {"name": "features", "datatype": "FP32", "shape": [3, 4], "data": features.flatten().tolist()},
            {"name": "extra", "datatype": "FP32", "shape": [3, 3], "data": extra.flatten().tolist()}]})
        with torch.no_grad():
            want = MLP(features, extra)
        for i, ref in enumerate(want):
            assert answer["outputs"][i]["shape"] == list(ref.shape), answer
            assert_close(answer["outputs"][i]["data"], ref.flatten().tolist(), f"mlp rows output__{i}")

        ids = torch.randint(0, 10, (3, 5))
        for scale in (torch.tensor([[2.0], [0.5], [1.0]]), torch.tensor([[-1.0], [-2.0], [0.5]])):  # both branches
            answer = infer(base, "scorer", {"inputs": [
                {"name": "ids", "datatype": "INT64", "shape": [3, 5], "data": ids.flatten().tolist()},
                {"name": "scale", "datatype": "FP32", "shape": [3, 1], "data": scale.flatten().tolist()}]})
            with torch.no_grad():
                want = SCORER(ids, scale)
            assert_close(answer["outputs"][0]["data"], want.flatten().tolist(), "scorer output__0")
        sample = json.load(open(os.path.join(REPO, "scorer", "request.json")))
        assert infer(base, "scorer", sample)["outputs"][0]["shape"] == [1, 3]
        assert server.poll() is None, "server exited"
    finally:
        stop_server(server, log)
    text = open(os.path.join(TMP, "server.log")).read()
    assert "Segmentation" not in text and "core dumped" not in text, text[-2000:]


check("export a traced MLP and a scripted model", export_models)
check("init: traced two-input MLP, tuple output, shapes from the graph", init_traced_mlp)
check("init: scripted model with --example-input (INT64 input)", init_scripted_with_example)
check("init: an existing model directory needs --force", existing_directory_needs_force)
check("init: newer TorchScript format version refused with both versions", newer_format_refused)
check("init: torch.save state_dict and legacy pickle refused as not TorchScript", state_dict_refused)
check("init: missing file refused", missing_file_refused)
check("serve: init's repository serves with no edits; outputs match the eager model", served_outputs_match_python)
finish("init", TMP)
