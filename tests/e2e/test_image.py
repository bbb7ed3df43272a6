"""End-to-end test of thaw's OCI image (scripts/image) under podman: built here from scratch with no registry,
run as uid 65534 with a read-only root and the example repository mounted read-only; from outside the container,
curl checks the health probes, every example model's metadata and its inference against the Python reference, and
gRPC's ServerReady; the image holds no shell, compiler or Python; `podman stop` (SIGTERM) drains a request already
accepted, and the container exits 0 with its log on the container's log stream.

Needs podman, buildah, runc and tini (scripts/install-deps) and root (rootful podman). Run:
/usr/bin/python3 tests/e2e/test_image.py"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import EXAMPLE_MODELS, ROOT, check, check_outputs, finish, free_port, grpc_stubs, load  # noqa: E402

TMP = tempfile.mkdtemp(prefix="thaw_e2e_image_")
TAG = "localhost/thaw:e2e"
NAME = f"thaw-e2e-{os.getpid()}"
PORT, GRPC_PORT = free_port(), free_port()
BASE = f"http://127.0.0.1:{PORT}"
ENV = {**os.environ, "CONTAINERS_CONF": os.path.join(ROOT, "deploy", "containers.conf")}
state = {}


def podman(*args, timeout=120, check_rc=True):
    run = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=ENV)
    if check_rc and run.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {run.returncode}\n{run.stderr[-2000:]}")
    return run


def curl(path, body=None, timeout_s=120):
    """(status, body text) of a GET, or a POST of body (JSON)."""
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(timeout_s)]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    run = subprocess.run(cmd + [BASE + path], input=body, capture_output=True, text=True, timeout=timeout_s + 10)
    text, _, status = run.stdout.rpartition("\n")
    return int(status or 0), text


def example_models():
    """(model, request's model) for every example model with a reference: a variant uses its base's request."""
    out = []
    for name in sorted(os.listdir(EXAMPLE_MODELS)):
        mdir = os.path.join(EXAMPLE_MODELS, name)
        if not os.path.exists(os.path.join(ROOT, "examples", "references", name + ".json")):
            continue
        base = name
        if os.path.exists(os.path.join(mdir, "variant.json")):
            with open(os.path.join(mdir, "variant.json")) as f:
                base = json.load(f)["base"]
        out.append((name, base))
    return out


def build_image():
    run = subprocess.run([os.path.join(ROOT, "scripts", "image"), "--tag", TAG, "--size-csv",
                          os.path.join(TMP, "size.csv")], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"scripts/image failed:\n{run.stdout}\n{run.stderr[-3000:]}"
    print(run.stdout.strip(), flush=True)
    size = int(open(os.path.join(TMP, "size.csv")).read().splitlines()[1].split(",")[1])
    inspected = int(podman("image", "inspect", "--format", "{{.Size}}", TAG).stdout)
    assert size == inspected, f"reported size {size} != podman's {inspected}"
    state["built"] = True


def image_has_no_shell_compiler_or_python():
    mount = podman("image", "mount", TAG).stdout.strip()
    try:
        found = []
        for dirpath, _, files in os.walk(mount):
            for f in files:
                if f in ("sh", "bash", "dash", "gcc", "g++", "cc1plus", "ld", "as") or f.startswith("python"):
                    found.append(os.path.join(dirpath, f)[len(mount):])
        assert not found, f"the image holds {found}"
        config = json.loads(podman("image", "inspect", TAG).stdout)[0]["Config"]
        assert config["User"] == "65534:65534", config["User"]
        assert config["Entrypoint"][:3] == ["/opt/thaw/bin/tini", "--", "/opt/thaw/bin/thaw"], config["Entrypoint"]
    finally:
        podman("image", "unmount", TAG, check_rc=False)


def start_container():
    podman("run", "-d", "--name", NAME, "--network", "host", "--read-only",
           "-v", f"{EXAMPLE_MODELS}:/models:ro", TAG,
           "--repo", "/models", "--host", "127.0.0.1", "--port", str(PORT), "--grpc-port", str(GRPC_PORT))
    state["running"] = True
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if curl("/v2/health/ready", timeout_s=2)[0] == 200:
                return
        except (ValueError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    logs = podman("logs", NAME, check_rc=False)
    raise AssertionError("not ready within 60 s:\n" + (logs.stdout + logs.stderr)[-3000:])


def runs_as_nobody():
    pid = podman("inspect", "--format", "{{.State.Pid}}", NAME).stdout.strip()  # tini, PID 1 inside
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    assert children, "tini has no child: thaw is not running"
    for p in [pid] + children:
        uid = next(line.split()[1] for line in open(f"/proc/{p}/status") if line.startswith("Uid:"))
        assert uid == "65534", f"pid {p} runs as uid {uid}"
    with open(f"/proc/{children[0]}/cmdline") as f:
        assert f.read().split("\0")[0] == "/opt/thaw/bin/thaw", "tini's child is not thaw"


def health_probes():
    for path in ("/v2/health/live", "/v2/health/ready", "/v2"):
        status, body = curl(path)
        assert status == 200, f"{path}: {status} {body}"


def metadata_and_infer_every_model():
    models = example_models()
    assert len(models) >= 10, models
    for model, request_of in models:
        status, body = curl(f"/v2/models/{model}")
        assert status == 200, f"{model} metadata: {status} {body}"
        assert json.loads(body)["name"] == model
        status, body = curl(f"/v2/models/{model}/infer", json.dumps(load("requests", request_of)))
        assert status == 200, f"{model} infer: {status} {body[:500]}"
        check_outputs(model, json.loads(body)["outputs"])
        status, _ = curl(f"/v2/models/{model}/ready")
        assert status == 200, f"{model} ready: {status}"
    print(f"  {len(models)} models answered as their references", flush=True)


def grpc_server_ready():
    grpc, pb, services = grpc_stubs(os.path.join(TMP, "stubs"))
    with grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}") as channel:
        stub = services.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready


def accepted_by_server(model):
    """Requests of `model` the server holds now: queued or running on an instance."""
    status, body = curl(f"/v2/models/{model}/status?memory=false", timeout_s=10)
    if status != 200:
        return 0
    doc = json.loads(body)
    return doc["queued"] + sum(i["in_flight"] for i in doc["instances"])


def sigterm_drains_accepted_request():
    """Twelve requests to `large` at once (two run, the rest queue: ~1 s of work); once the server holds every
    one not yet answered, `podman stop` sends SIGTERM: every one is answered 200, at least one after the signal,
    and the container exits 0; the log (on stdout: THAW_LOG_STREAM=stdout in the image) shows it listening,
    draining and stopping drained."""
    body = json.dumps(load("requests", "large"))
    count = 12
    answers = []

    def request():
        status, text = curl("/v2/models/large/infer", body)
        answers.append((status, text, time.monotonic()))

    clients = [threading.Thread(target=request) for _ in range(count)]
    for c in clients:
        c.start()
    # SIGTERM only once the server has accepted every request still unanswered (a request that reaches the
    # server after the signal gets 503, as it should).
    deadline = time.monotonic() + 30
    while len(answers) + accepted_by_server("large") < count:
        assert time.monotonic() < deadline, f"the server holds {accepted_by_server('large')} of {count} requests"
        time.sleep(0.005)
    signalled = time.monotonic()
    stop = podman("stop", "-t", "30", NAME, timeout=60)
    for c in clients:
        c.join(60)
    state["running"] = False
    assert [a[0] for a in answers] == [200] * count, [(a[0], a[1][:200]) for a in answers]
    for _, text, _ in answers:
        check_outputs("large", json.loads(text)["outputs"])
    after = sum(1 for a in answers if a[2] > signalled)
    assert after >= 1, "every request was answered before SIGTERM: nothing was drained"
    code = podman("inspect", "--format", "{{.State.ExitCode}}", NAME).stdout.strip()
    logs = podman("logs", NAME)
    assert "server_listening" not in logs.stderr, "the image logs to stderr, not stdout"
    logs = logs.stdout
    assert code == "0", f"exit code {code} ({stop.stderr})\n{logs[-2000:]}"
    for event in ("server_listening", "server_draining", "how=drained"):
        assert event in logs, f"no {event} in the container's log:\n{logs[-2000:]}"
    print(f"  {after} of {count} requests answered after SIGTERM", flush=True)


def main():
    check("scripts/image builds the image from scratch (no registry) and reports its size", build_image)
    if state.get("built"):
        check("the image holds no shell, compiler or Python; user 65534; tini runs thaw", image_has_no_shell_compiler_or_python)
        check("podman run --read-only --network host with /models mounted read-only: ready", start_container)
    if state.get("running"):
        check("thaw and its workers run as uid 65534", runs_as_nobody)
        check("health probes /v2/health/live, /v2/health/ready and /v2 answer 200", health_probes)
        check("every example model: metadata, infer matching its Python reference, ready", metadata_and_infer_every_model)
        check("gRPC ServerReady on the container's gRPC port", grpc_server_ready)
        check("podman stop: SIGTERM drains the accepted requests, exit 0, the log on stdout",
              sigterm_drains_accepted_request)
    podman("rm", "-f", NAME, check_rc=False)
    podman("rmi", TAG, check_rc=False)  # ~700 MB; scripts/image builds it again in ~45 s
    finish("image", TMP)


if __name__ == "__main__":
    main()
