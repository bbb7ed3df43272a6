"""Helpers shared by the end-to-end tests: the binary and example paths, running
the binary, named checks that report and go on, a free local port, stopping a
server, and gRPC stubs from the project's .proto."""
import importlib
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
    src/grpc/*.proto with protoc and grpc_python_plugin (python3-grpcio), once per directory."""
    if not os.path.exists(os.path.join(out_dir, "grpc_service_pb2_grpc.py")):
        os.makedirs(out_dir, exist_ok=True)
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "src", "grpc"), "--python_out=" + out_dir,
                        "--grpc_out=" + out_dir, "--plugin=protoc-gen-grpc=" + shutil.which("grpc_python_plugin"),
                        "grpc_service.proto", "model_config.proto"], check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return (importlib.import_module("grpc"), importlib.import_module("grpc_service_pb2"),
            importlib.import_module("grpc_service_pb2_grpc"))
