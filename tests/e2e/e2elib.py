"""Helpers shared by the end-to-end tests: the binary and example paths, running
the binary, named checks that report and go on, a free local port, stopping a
server, and gRPC stubs from the project's .proto."""
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THAW = os.path.join(ROOT, "build", "thaw")
EXAMPLE_MODELS = os.path.join(ROOT, "examples", "models")
EXAMPLE_REQUESTS = os.path.join(ROOT, "examples", "requests")
EXAMPLES = os.path.join(ROOT, "examples")

results = []  # (check name, exception or None), in run order


def check(name, fn):
    """Runs fn; records and prints PASS or FAIL, and goes on to the next check."""
    try:
        fn()
        results.append((name, None))
        print(f"PASS {name}", flush=True)
    except Exception as e:  # report and continue with the next check
        results.append((name, e))
        print(f"FAIL {name}: {e}", flush=True)
        traceback.print_exc()


def failed():
    return [name for name, error in results if error]


def run_thaw(*args, cwd, timeout=300):
    """build/thaw with args, in cwd, stdin closed; the CompletedProcess (text output captured)."""
    return subprocess.run([THAW, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def finish(label, tmp):
    """Prints "e2e LABEL: N passed, N failed", removes tmp when all passed (kept to look at otherwise), and exits
    non-zero on any failure."""
    failed_checks = failed()
    print(f"e2e {label}: {len(results) - len(failed_checks)} passed, {len(failed_checks)} failed")
    if not failed_checks:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed_checks else 0)


def load(kind, model):
    """An example's JSON file: examples/<kind>/<model>.json (kind: requests or references)."""
    with open(os.path.join(EXAMPLES, kind, model + ".json")) as f:
        return json.load(f)


def assert_close(got, want, what):
    assert len(got) == len(want), f"{what}: {len(got)} values, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if abs(g - w) > 1e-4 + 1e-3 * abs(w):
            raise AssertionError(f"{what}[{i}] = {g}, reference {w}")


def check_outputs(model, outputs):
    """A v2 response's outputs against examples/references/<model>.json: shapes, datatypes, values within
    1e-4 + 1e-3 relative, and each row's predicted class. The int8 variants are checked against what the
    build computed on this machine (build/machine-references/: int8 kernels round by CPU)."""
    on_this_machine = os.path.join(ROOT, "build", "machine-references", model + ".json")
    if os.path.exists(on_this_machine):
        with open(on_this_machine) as f:
            ref = json.load(f)
    else:
        ref = load("references", model)
    by_name = {o["name"]: o for o in outputs}
    for want in ref["outputs"]:
        got = by_name[want["name"]]
        assert got["shape"] == want["shape"], f"{model}: shape {got['shape']} != {want['shape']}"
        assert got["datatype"] == want["datatype"]
        assert_close(got["data"], want["data"], f"{model}.{want['name']}")
        rows = want["shape"][0]
        cols = len(want["data"]) // rows
        argmax = [max(range(cols), key=lambda j: got["data"][r * cols + j]) for r in range(rows)]
        assert argmax == ref["predicted"], f"{model}: predicted {argmax}, reference {ref['predicted']}"


def npm_ci(package_dir, installed_module):
    """`npm ci` in package_dir (its package-lock.json) unless node_modules/<installed_module> is there already."""
    if not os.path.isdir(os.path.join(package_dir, "node_modules", installed_module)):
        run = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", package_dir], capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, f"npm ci in {package_dir} failed:\n{run.stderr[-2000:]}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(server, log, timeout_s=40):
    """SIGTERM, then SIGKILL if the server has not exited within timeout_s; closes its log."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    log.close()


def grpc_stubs(out_dir):
    """(grpc, messages, services) for inference.GRPCInferenceService: Python stubs generated into out_dir from
    src/grpc/*.proto with protoc and grpc_python_plugin (python3-grpcio), once per directory; ModelMesh's
    mmesh.ModelRuntime is then importlib.import_module("model_runtime_pb2") and "model_runtime_pb2_grpc"."""
    if not os.path.exists(os.path.join(out_dir, "grpc_service_pb2_grpc.py")):
        os.makedirs(out_dir, exist_ok=True)
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "src", "grpc"), "--python_out=" + out_dir,
                        "--grpc_out=" + out_dir, "--plugin=protoc-gen-grpc=" + shutil.which("grpc_python_plugin"),
                        "grpc_service.proto", "model_config.proto", "model_runtime.proto"], check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return (importlib.import_module("grpc"), importlib.import_module("grpc_service_pb2"),
            importlib.import_module("grpc_service_pb2_grpc"))
