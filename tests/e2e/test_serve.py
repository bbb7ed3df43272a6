#!/usr/bin/python3
"""End-to-end test of `thaw serve` with real clients.

Starts build/thaw on the example repository, sends requests with curl and
hey, and checks: a cold start from zero and its breakdown, memory shared
with the template, pre-warming, every example model's outputs against the
Python references (JSON and binary tensors), v2 errors (404, 400, 405), 2000
requests under concurrency, a worker killed with SIGKILL mid-traffic, a
request past its deadline (504), and a clean SIGTERM shutdown.
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import contextlib
import gzip
import json
import math
import os
import re
import signal
import socket
import struct
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import THAW, assert_close, check, check_outputs, failed, free_port, grpc_stubs, load, results  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")
MODELS = ["fraud", "fraud-xgb", "fashion", "fashion-onnx", "textenc", "large"]
PACK = {"FP32": "f", "FP64": "d", "INT64": "q", "INT32": "i", "BOOL": "?"}

TMP = tempfile.mkdtemp(prefix="thaw_e2e_")


PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"
GRPC_PORT = free_port()


def curl(method, path, body=None, headers=(), base=None):
    """Returns (status, headers dict with lower-case names, body bytes)."""
    out, hdr = os.path.join(TMP, "body"), os.path.join(TMP, "headers")
    cmd = ["curl", "-sS", "-X", method, "-o", out, "-D", hdr, "-w", "%{http_code}", "--max-time", "120"]
    for h in headers:
        cmd += ["-H", h]
    if body is not None:
        src = os.path.join(TMP, "request")
        with open(src, "wb") as f:
            f.write(body if isinstance(body, bytes) else body.encode())
        cmd += ["--data-binary", "@" + src]
        if not any(h.lower().startswith("content-type") for h in headers):
            cmd += ["-H", "Content-Type: application/json"]
    cmd.append((base or BASE) + path)
    status = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    response_headers = {}
    with open(hdr) as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                response_headers[k.strip().lower()] = v.strip()
    with open(out, "rb") as f:
        return int(status), response_headers, f.read()


def cold_start_parts(params):
    """The cold start's breakdown from a response's flat parameters: cold_start_<part>_ms -> {part: ms}."""
    return {k[len("cold_start_"):-len("_ms")]: v for k, v in params.items()
            if k.startswith("cold_start_") and k.endswith("_ms")}


def flat(data):
    if isinstance(data, list):
        return [x for item in data for x in flat(item)]
    return [data]


def infer_json(model):
    infer_json_as(model, model)


def infer_json_as(deployed, model):
    """Sends `model`'s sample request to the model deployed as `deployed` and checks the outputs."""
    request = load("requests", model)
    status, headers, body = curl("POST", f"/v2/models/{deployed}/infer", json.dumps(request))
    assert status == 200, f"{deployed}: HTTP {status}: {body[:300]}"
    response = json.loads(body)
    assert response["model_name"] == deployed
    assert response["id"] == request["id"], "id not echoed"
    assert "cold_start" in response["parameters"]
    check_outputs(model, response["outputs"])


def to_binary(request):
    """The same request with every input as binary data and binary outputs."""
    header = {"id": request["id"], "inputs": [], "parameters": {"binary_data_output": True}}
    blobs = b""
    for tensor in request["inputs"]:
        values = flat(tensor["data"])
        blob = struct.pack("<%d%s" % (len(values), PACK[tensor["datatype"]]), *values)
        header["inputs"].append({"name": tensor["name"], "shape": tensor["shape"], "datatype": tensor["datatype"],
                                 "parameters": {"binary_data_size": len(blob)}})
        blobs += blob
    text = json.dumps(header).encode()
    return text + blobs, len(text)


def infer_binary(model):
    body, header_length = to_binary(load("requests", model))
    status, headers, response = curl("POST", f"/v2/models/{model}/infer", body,
                                     [f"Inference-Header-Content-Length: {header_length}",
                                      "Content-Type: application/octet-stream"])
    assert status == 200, f"{model}: HTTP {status}: {response[:300]}"
    json_length = int(headers["inference-header-content-length"])
    meta = json.loads(response[:json_length])
    offset = json_length
    outputs = []
    for out in meta["outputs"]:
        size = out["parameters"]["binary_data_size"]
        n = size // struct.calcsize(PACK[out["datatype"]])
        out["data"] = list(struct.unpack_from("<%d%s" % (n, PACK[out["datatype"]]), response, offset))
        offset += size
        outputs.append(out)
    assert offset == len(response), "trailing bytes after binary outputs"
    check_outputs(model, outputs)


def wait_status(model, predicate, what, seconds=30):
    """Polls /status until predicate(doc) holds."""
    for _ in range(int(seconds * 10)):
        doc = json.loads(curl("GET", f"/v2/models/{model}/status?memory=false")[2])
        if predicate(doc):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"{model}: {what} not reached: {doc}")


def cold_start_breakdown():
    """A model never called holds nothing: its first request starts from the zygote and its prepared
    artifact; that call makes it hot, so its template starts in the background, and the next cold start
    forks a warmed standby from it. Each reports where its time went, and how it started."""
    doc = wait_status("textenc", lambda d: d["prepared"], "prepared artifact", seconds=90)
    assert doc["template_state"] == "none" and doc["instances"] == [], doc  # deploying held nothing
    status, headers, body = curl("POST", "/v2/models/textenc/infer", json.dumps(load("requests", "textenc")))
    assert status == 200, body[:200]
    params = json.loads(body)["parameters"]
    assert params["cold_start"] is True, params
    assert params["start_path"] == "zygote" and params["start_level"] == "prepared", params
    assert all(not isinstance(v, (dict, list)) for v in params.values()), "parameters are flat scalars: " + str(params)
    parts = cold_start_parts(params)
    for key in ["queue", "spawner_wait", "spawn", "runtime_init", "model_load", "warmup", "attach", "first_inference",
                "init", "total"]:
        assert key in parts and parts[key] >= 0, parts
    assert parts["model_load"] > 0, "from the zygote the instance loads the model: " + str(parts)
    assert headers["x-thaw-cold-start"].startswith("zygote;"), headers
    status, _, body = curl("POST", "/v2/models/textenc/infer", json.dumps(load("requests", "textenc")))
    assert json.loads(body)["parameters"]["cold_start"] is False
    wait_status("textenc", lambda d: d["template_state"] == "ready", "template ready")
    # keep_alive_s 0 stops the instance after each request (the template stays: it is not a worker setting).
    assert curl("PUT", "/v2/models/textenc/settings", '{"keep_alive_s": 0}')[0] == 200
    wait_status("textenc", lambda d: d["instances"] == [], "instance stopped")
    assert curl("PUT", "/v2/models/textenc/settings", '{"keep_alive_s": 600}')[0] == 200
    status, headers, body = curl("POST", "/v2/models/textenc/infer", json.dumps(load("requests", "textenc")))
    params = json.loads(body)["parameters"]
    assert params["cold_start"] is True and params["start_path"] == "template", params
    assert params["start_level"] == "standby", params
    parts = cold_start_parts(params)
    assert parts["model_load"] == 0 and parts["warmup"] == 0, "a template's instance loads nothing: " + str(parts)
    assert headers["x-thaw-cold-start"].startswith("template;"), headers
    log = open(os.path.join(TMP, "server.log")).read()
    assert len(re.findall(r"template_ready model=textenc ", log)) == 1, "template_ready logged once per template"
    assert len(re.findall(r" zygote_ready ", log)) == 1, "zygote_ready logged once"


def engine_start_paths_and_isolation(model):
    """A model of another engine behind the same backend seam (fraud-xgb: XGBoost; fashion-onnx: OpenCV
    DNN): its first call starts from the zygote and loads the model; then an instance forked from its
    template loads nothing; a killed instance fails only its own model, and the next call starts a fresh one."""
    doc = wait_status(model, lambda d: d["instances"] == [], "no instance yet")
    assert doc["template_state"] == "none", doc
    request = json.dumps(load("requests", model))
    status, headers, body = curl("POST", f"/v2/models/{model}/infer", request)
    assert status == 200, body[:300]
    params = json.loads(body)["parameters"]
    assert params["cold_start"] is True and params["start_path"] == "zygote", params
    assert cold_start_parts(params)["model_load"] > 0, params
    check_outputs(model, json.loads(body)["outputs"])
    # A second call in a row makes the model hot (thaw serve --template-admit-calls): its template starts.
    status, _, body = curl("POST", f"/v2/models/{model}/infer", request)
    assert status == 200 and json.loads(body)["parameters"]["cold_start"] is False, body[:300]
    wait_status(model, lambda d: d["template_state"] == "ready", "template ready")
    assert curl("PUT", f"/v2/models/{model}/settings", '{"keep_alive_s": 0}')[0] == 200
    wait_status(model, lambda d: d["instances"] == [], "instance stopped")
    assert curl("PUT", f"/v2/models/{model}/settings", '{"keep_alive_s": 600}')[0] == 200
    status, headers, body = curl("POST", f"/v2/models/{model}/infer", request)
    params = json.loads(body)["parameters"]
    assert params["cold_start"] is True and params["start_path"] == "template", params
    parts = cold_start_parts(params)
    assert parts["model_load"] == 0 and parts["warmup"] == 0, "forked from the template: " + str(parts)
    check_outputs(model, json.loads(body)["outputs"])
    pids = worker_pids(model)
    assert pids, "an instance is running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_status(model, lambda d: all(i["pid"] not in pids for i in d["instances"]), "killed instance gone")
    status, _, body = curl("POST", "/v2/models/fraud/infer", json.dumps(load("requests", "fraud")))
    assert status == 200, "another model is unaffected: " + body[:200]
    status, _, body = curl("POST", f"/v2/models/{model}/infer", request)
    assert status == 200, body[:300]
    check_outputs(model, json.loads(body)["outputs"])


def status_shows_shared_memory():
    status, _, body = curl("GET", "/v2/models/textenc/status")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["start_path"] == "template" and doc["template"]["ready"] is True, doc
    instance = doc["instances"][0]
    assert instance["pid"] > 0 and instance["state"] == "idle", doc
    # Forked from the template: most of the instance's resident pages are shared.
    assert instance["rss_kb"] > 0 and instance["pss_kb"] < instance["rss_kb"], doc
    assert instance["private_kb"] < instance["rss_kb"] / 2, doc


def warm_ahead_of_traffic():
    status, _, body = curl("POST", "/v2/models/fashion/warm?instances=2")
    assert status == 200, body
    assert json.loads(body)["instances"] == 2, body
    for _ in range(100):
        doc = json.loads(curl("GET", "/v2/models/fashion/status")[2])
        if [i["state"] for i in doc["instances"]] == ["idle", "idle"]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"instances not idle: {doc}")
    expect_error("POST", "/v2/models/fashion/warm?instances=lots", None, 400, "instances")
    expect_error("POST", "/v2/models/nosuchmodel/warm", None, 404, "nosuchmodel")


def tcp_socket_inodes(pid):
    """Inodes of the TCP sockets in pid's network namespace (listening and connected)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            inodes |= {line.split()[9] for line in f}
    return inodes


def workers_are_confined(server_pid):
    """Every worker process (templates, instances) runs sandboxed, as /proc shows it."""
    # A template starting in the background confines itself right after its exec: let it.
    for model in MODELS:
        wait_status(model, lambda d: d["template_state"] != "starting", "template not starting")
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    workers, todo = [], [server_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            workers.append(child)
            todo.append(child)
    assert len(workers) >= 5, f"expected templates and instances, found {len(workers)} workers"
    server_tcp = tcp_socket_inodes(server_pid)
    server_ns = {ns: os.readlink(f"/proc/{server_pid}/ns/{ns}") for ns in ("net", "mnt")}
    for pid in workers:
        fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
        where = f"worker {pid} ({open(f'/proc/{pid}/cmdline').read().split(chr(0))[1:3]})"
        assert fields["Uid"].split() == ["65534"] * 4, f"{where}: Uid {fields['Uid']}"
        assert fields["NoNewPrivs"].strip() == "1", f"{where}: NoNewPrivs {fields['NoNewPrivs']}"
        assert fields["Seccomp"].strip() == "2", f"{where}: Seccomp {fields['Seccomp']}"
        assert int(fields["CapEff"], 16) == 0, f"{where}: CapEff {fields['CapEff']}"
        for ns, server_link in server_ns.items():
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != server_link, f"{where}: shares the server's {ns} namespace"
        assert os.getsid(pid) != os.getsid(server_pid), f"{where}: in the server's session (terminal)"
        fds = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert fds.get("0") == "/dev/null", f"{where}: stdin is {fds.get('0')}"
        sockets = {re.sub(r"\D", "", target) for target in fds.values() if target.startswith("socket:")}
        assert not sockets & server_tcp, f"{where}: holds the server's TCP sockets {sockets & server_tcp}"
        assert not tcp_socket_inodes(pid), f"{where}: has TCP sockets in its namespace"
        assert len(fds) <= 8, f"{where}: {len(fds)} descriptors open: {fds}"
    # Instances add a filter that keeps their signals to themselves (workers share a uid).
    instances = [i["pid"] for m in MODELS for i in json.loads(curl("GET", f"/v2/models/{m}/status")[2])["instances"]
                 if i["pid"] > 0]
    assert instances, "no instance to check"
    for pid in instances:
        filters = [line for line in open(f"/proc/{pid}/status") if line.startswith("Seccomp_filters:")]
        assert filters and int(filters[0].split()[1]) >= 2, f"instance {pid}: {filters} (signals not restricted)"
    print(f"  {len(workers)} worker processes: uid 65534, no_new_privs, seccomp, no capabilities, own net and mount "
          f"namespaces and session, stdin /dev/null, no TCP socket; {len(instances)} instances signal only "
          f"themselves", flush=True)


def nested_data_and_output_selection():
    request = load("requests", "fraud")
    tensor = request["inputs"][0]
    rows, cols = tensor["shape"]
    tensor["data"] = [tensor["data"][r * cols:(r + 1) * cols] for r in range(rows)]
    request["outputs"] = [{"name": "probabilities"}]
    status, _, body = curl("POST", "/v2/models/fraud/infer", json.dumps(request))
    assert status == 200, body
    check_outputs("fraud", json.loads(body)["outputs"])


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def triton_statistics():
    """GET /v2/models/stats and .../{m}[/versions/1]/stats answer Triton's statistics: every field perf_analyzer
    reads (name, version, inference_count, execution_count, and count/ns of success, queue, compute_input,
    compute_infer, compute_output, cache_hit, cache_miss as unsigned integers), counting what was served."""
    for _ in range(3):
        assert curl("POST", "/v2/models/fraud/infer", json.dumps(load("requests", "fraud")))[0] == 200
    status, _, body = curl("GET", "/v2/models/stats")
    assert status == 200, body
    stats = {m["name"]: m for m in json.loads(body)["model_stats"]}
    assert set(MODELS) <= set(stats), sorted(stats)
    for name, entry in stats.items():
        assert entry["version"] == "1" and is_count(entry["last_inference"]), entry
        assert is_count(entry["inference_count"]) and is_count(entry["execution_count"]), entry
        for key in ["success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit",
                    "cache_miss"]:
            d = entry["inference_stats"][key]
            assert is_count(d["count"]) and is_count(d["ns"]), (name, key, d)
        for b in entry["batch_stats"]:
            assert is_count(b["batch_size"]) and all(is_count(b[k]["count"]) for k in
                                                     ["compute_input", "compute_infer", "compute_output"]), b
    fraud = stats["fraud"]
    rows = load("requests", "fraud")["inputs"][0]["shape"][0]
    assert fraud["inference_stats"]["success"]["count"] >= 3 and fraud["inference_count"] >= 3 * rows, fraud
    assert 1 <= fraud["execution_count"] <= fraud["inference_stats"]["success"]["count"], fraud
    assert fraud["inference_stats"]["compute_infer"]["ns"] > 0 and fraud["last_inference"] > 1.6e12, fraud
    for path in ["/v2/models/fraud/stats", "/v2/models/fraud/versions/1/stats"]:
        status, _, body = curl("GET", path)
        one = json.loads(body)["model_stats"]
        assert status == 200 and len(one) == 1 and one[0]["name"] == "fraud", body
        assert one[0]["inference_count"] >= fraud["inference_count"], (one, fraud)
    expect_error("GET", "/v2/models/nosuchmodel/stats", None, 404, "nosuchmodel")


def triton_model_config():
    """GET .../config is Triton's model configuration, checked field by field; with batching on, dims leave out the
    batch dim, and what Triton's image_client.py requires of a model holds for fashion loaded with a Triton-format
    override (max_batch_size 8, dynamic_batching). PUT .../config is 405 pointing at .../settings."""
    status, _, body = curl("GET", "/v2/models/fashion/config")
    assert status == 200, body
    config = json.loads(body)
    assert config["name"] == "fashion" and config["backend"] == "pytorch" and isinstance(config["platform"], str)
    assert config["max_batch_size"] == 0, "batching off: no batch dim outside dims"
    (inp,) = config["input"]
    assert inp == {"name": "image", "data_type": "TYPE_FP32", "format": "FORMAT_NCHW", "dims": [-1, 1, 28, 28],
                   "is_shape_tensor": False, "allow_ragged_batch": False, "optional": False}, inp
    (out,) = config["output"]
    assert out["name"] == "logits" and out["data_type"] == "TYPE_FP32" and out["dims"] == [-1, 10], out
    (group,) = config["instance_group"]
    assert group["kind"] == "KIND_CPU" and group["count"] == 2, group
    assert "dynamic_batching" not in config and config["version_policy"] == {"latest": {"num_versions": 1}}
    expect_error("PUT", "/v2/models/fashion/config", "{}", 405, "/v2/models/fashion/settings")

    # Edit it as a Triton user would and load it: batching on, 8 rows.
    config["max_batch_size"] = 8
    config["dynamic_batching"] = {"max_queue_delay_microseconds": 2000}
    for tensor in config["input"] + config["output"]:
        tensor["dims"] = tensor["dims"][1:]
    load_body = json.dumps({"parameters": {"config": json.dumps(config)}})
    status, _, body = curl("POST", "/v2/repository/models/fashion/load", load_body)
    assert status == 200, body
    try:
        config = json.loads(curl("GET", "/v2/models/fashion/config")[2])
        meta = json.loads(curl("GET", "/v2/models/fashion")[2])
        assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [1, 28, 28], config
        assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000, config
        settings = json.loads(curl("GET", "/v2/models/fashion/settings")[2])
        assert settings["batching"] == "fixed" and settings["max_batch_size"] == 8, settings
        # image_client.py's parse_model: one input and output, FP32 output, an NCHW input whose metadata shape
        # has 3 dims plus the batch dim when max_batch_size > 0, an output that is a vector after the batch dim.
        assert len(meta["inputs"]) == 1 and len(meta["outputs"]) == 1 and len(config["input"]) == 1
        assert meta["outputs"][0]["datatype"] == "FP32"
        assert config["input"][0]["format"] in ("FORMAT_NCHW", "FORMAT_NHWC")
        assert len(meta["inputs"][0]["shape"]) == 3 + (1 if config["max_batch_size"] > 0 else 0), meta
        assert sum(1 for d in meta["outputs"][0]["shape"][1:] if d > 1) <= 1, meta
        infer_json("fashion")
    finally:
        status, _, body = curl("POST", "/v2/repository/models/fashion/load")  # config.json again
        assert status == 200, body
    assert json.loads(curl("GET", "/v2/models/fashion/config")[2])["max_batch_size"] == 0
    # thaw's own format replaces config.json until the next load; other parameters are refused.
    own = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}],
           "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}], "memory_mb": 640}
    status, _, body = curl("POST", "/v2/repository/models/fraud-reload/load",
                           json.dumps({"parameters": {"config": json.dumps(own)}}))
    assert status == 200, body
    assert json.loads(curl("GET", "/v2/models/fraud-reload/settings")[2])["memory_mb"] == 640
    infer_json_as("fraud-reload", "fraud")
    expect_error("POST", "/v2/repository/models/fraud-reload/load", json.dumps({"parameters": {"file:1/model.pt": "AA=="}}),
                 400, "file:1/model.pt")
    expect_error("POST", "/v2/repository/models/fraud-reload/load",
                 json.dumps({"parameters": {"config": json.dumps({"max_batch_size": 4, "sequence_batching": {}})}}),
                 400, "sequence_batching")
    assert curl("POST", "/v2/repository/models/fraud-reload/load")[0] == 200
    assert json.loads(curl("GET", "/v2/models/fraud-reload/settings")[2])["memory_mb"] != 640


def grpc_python_client():
    """A Python gRPC client (python3-grpcio, stubs generated here from the project's .proto with protoc and
    grpc_python_plugin) on --grpc-port: health, metadata, Triton's config and statistics, and ModelInfer with raw
    and with typed contents matching the Python reference for fraud and fashion, compressed or not; errors carry
    gRPC codes."""
    grpc, pb, pb_grpc = grpc_stubs(os.path.join(TMP, "grpc_stubs"))
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}"))
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert meta.name == "thaw" and "model_configuration" in meta.extensions, meta
    assert stub.ModelReady(pb.ModelReadyRequest(name="fraud")).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="nosuchmodel")).ready
    for model in ("fraud", "fashion"):
        reference = load("requests", model)
        (tensor,) = reference["inputs"]
        values = flat(tensor["data"])
        for raw in (True, False):
            request = pb.ModelInferRequest(model_name=model, id=reference["id"])
            inp = request.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
            if raw:
                request.raw_input_contents.append(struct.pack("<%df" % len(values), *values))
            else:
                inp.contents.fp32_contents.extend(values)
            response = stub.ModelInfer(request, timeout=60)
            assert response.model_name == model and response.id == reference["id"], response
            outputs = []
            for out_tensor, data in zip(response.outputs, response.raw_output_contents):
                n = len(data) // 4
                outputs.append({"name": out_tensor.name, "datatype": out_tensor.datatype, "shape": list(out_tensor.shape),
                                "data": list(struct.unpack("<%df" % n, data))})
            check_outputs(model, outputs)
            assert response.parameters["total_ms"].double_param > 0, response.parameters
    config = stub.ModelConfig(pb.ModelConfigRequest(name="fashion")).config
    assert config.name == "fashion" and config.input[0].format == 2 and list(config.input[0].dims) == [-1, 1, 28, 28], config
    stats = stub.ModelStatistics(pb.ModelStatisticsRequest(name="fraud")).model_stats[0]
    assert stats.name == "fraud" and stats.inference_stats.success.count >= 2 and stats.execution_count >= 1, stats
    try:
        stub.ModelInfer(pb.ModelInferRequest(model_name="nosuchmodel"), timeout=10)
        raise AssertionError("an unknown model was served")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND and "nosuchmodel" in error.details(), error
    bad = pb.ModelInferRequest(model_name="fraud")
    bad.inputs.add(name="features", datatype="FP32", shape=[1, 29]).contents.fp32_contents.extend([0.0] * 29)
    try:
        stub.ModelInfer(bad, timeout=10)
        raise AssertionError("a wrong shape was served")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "shape" in error.details(), error
    # Compressed request messages (grpc-encoding gzip and deflate) give the same answer.
    reference = load("requests", "fraud")
    (tensor,) = reference["inputs"]
    request = pb.ModelInferRequest(model_name="fraud")
    request.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
    request.raw_input_contents.append(struct.pack("<%df" % len(flat(tensor["data"])), *flat(tensor["data"])))
    plain = stub.ModelInfer(request, timeout=60).raw_output_contents
    for compression in (grpc.Compression.Gzip, grpc.Compression.Deflate):
        assert stub.ModelInfer(request, timeout=60, compression=compression).raw_output_contents == plain, compression
    # Not gRPC (curl over HTTP/2): a content-type other than application/grpc is HTTP 415; a method thaw does not
    # serve is UNIMPLEMENTED (12) in trailers-only headers.
    message = request.SerializeToString()
    framed = b"\0" + struct.pack(">I", len(message)) + message
    for content_type, expect in (("application/json", "HTTP/2 415"), ("application/grpc", "grpc-status: 12")):
        out = subprocess.run(["curl", "-s", "-i", "--http2-prior-knowledge", "-H", f"content-type: {content_type}",
                              "--data-binary", "@-", f"http://127.0.0.1:{GRPC_PORT}/inference.GRPCInferenceService/"
                              "ModelStreamInfer"], input=framed, capture_output=True, timeout=10).stdout
        assert expect.encode() in out, (content_type, out[:300])


def text_in():
    """textcls: raw UTF-8 text in a BYTES input, tokenized in the model process by the config's tokenizer, gives
    the Python reference's logits over REST JSON, the binary extension, a raw binary body and gRPC (bytes_contents
    and raw); a text the vocabulary lacks still runs; a wrong shape is a 400 naming the input."""
    request = load("requests", "textcls")
    texts = request["inputs"][0]["data"]
    status, _, body = curl("POST", "/v2/models/textcls/infer", json.dumps(request))
    assert status == 200, body[:300]
    check_outputs("textcls", json.loads(body)["outputs"])
    # Binary extension: each element a 4-byte length and its UTF-8 bytes.
    blob = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                                     "parameters": {"binary_data_size": len(blob)}}],
                         "parameters": {"binary_data_output": False}}).encode()
    status, _, body = curl("POST", "/v2/models/textcls/infer", header + blob,
                           [f"Inference-Header-Content-Length: {len(header)}", "Content-Type: application/octet-stream"])
    assert status == 200, body[:300]
    check_outputs("textcls", json.loads(body)["outputs"])
    # Raw binary body: the one text; its logits are the reference's first row.
    status, headers, body = curl("POST", "/v2/models/textcls/infer", texts[0].encode(),
                                 ["Inference-Header-Content-Length: 0", "Content-Type: application/octet-stream"])
    assert status == 200, body[:300]
    json_length = int(headers["inference-header-content-length"])
    row = list(struct.unpack("<8f", body[json_length:json_length + 32]))
    assert_close(row, load("references", "textcls")["outputs"][0]["data"][:8], "textcls raw row 0")
    # Words outside the vocabulary, non-ASCII text and an empty text are texts like any other.
    odd = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3],
                       "data": ["zzqx unheardofword", "Bibliothèque für Ünïcode — 😀", ""]}]}
    status, _, body = curl("POST", "/v2/models/textcls/infer", json.dumps(odd))
    assert status == 200 and json.loads(body)["outputs"][0]["shape"] == [3, 8], body[:300]
    bad = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]}
    status, _, body = curl("POST", "/v2/models/textcls/infer", json.dumps(bad))
    assert status == 400 and "'text'" in json.loads(body)["error"], body[:300]
    # gRPC: typed bytes_contents and raw_input_contents.
    grpc, pb, pb_grpc = grpc_stubs(os.path.join(TMP, "grpc_stubs"))
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}"))
    for raw in (True, False):
        message = pb.ModelInferRequest(model_name="textcls")
        tensor = message.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
        if raw:
            message.raw_input_contents.append(blob)
        else:
            tensor.contents.bytes_contents.extend(t.encode() for t in texts)
        response = stub.ModelInfer(message, timeout=60)
        out = response.outputs[0]
        data = response.raw_output_contents[0]
        check_outputs("textcls", [{"name": out.name, "datatype": out.datatype, "shape": list(out.shape),
                                   "data": list(struct.unpack("<%df" % (len(data) // 4), data))}])


def load_over_grpc_and_binary_http():
    """thaw load --protocol grpc (open loop, ModelInfer with raw_input_contents) and --tensors binary (REST with
    the binary tensor extension): every request 200, and the summary names the protocol."""
    for extra, port, protocol in ((["--protocol", "grpc"], GRPC_PORT, "grpc"),
                                  (["--tensors", "binary"], PORT, "http-binary")):
        out = os.path.join(TMP, f"load_{protocol}.json")
        run = subprocess.run([THAW, "load", "--url", f"http://127.0.0.1:{port}", "--model", "fraud", "--request",
                              os.path.join(EXAMPLES, "requests", "fraud.json"), "--rate", "100", "--duration-s", "1",
                              "--json", out] + extra, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        summary = json.load(open(out))
        assert summary["run"]["protocol"] == protocol, summary["run"]
        assert summary["scheduled"] > 50 and summary["status_counts"] == {"200": summary["scheduled"]}, summary
        assert summary["batch_size"]["mean"] >= 2, summary["batch_size"]  # the request's two rows
    bad = subprocess.run([THAW, "load", "--url", f"http://127.0.0.1:{GRPC_PORT}", "--model", "fraud", "--request",
                          os.path.join(EXAMPLES, "requests", "fraud.json"), "--rate", "10", "--duration-s", "1",
                          "--protocol", "grpc", "--tensors", "binary"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--tensors binary" in bad.stderr, bad.stderr


def load_against_a_closed_port():
    """thaw load where nothing listens: exit 1, the failures counted as connection refused, and stderr says
    that no request succeeded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    out = os.path.join(TMP, "load_refused.json")
    run = subprocess.run([THAW, "load", "--url", f"http://127.0.0.1:{closed}", "--model", "fraud", "--request",
                          os.path.join(EXAMPLES, "requests", "fraud.json"), "--rate", "20", "--duration-s", "0.3",
                          "--json", out], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert re.search(r"failures +connection refused \d+", run.stdout), run.stdout
    assert "no request succeeded" in run.stderr and "connection refused" in run.stderr, run.stderr
    summary = json.load(open(out))
    assert summary["ok_2xx"] == 0 and summary["failures"]["connection_refused"] == summary["scheduled"] > 0, summary


def classification_extension():
    """outputs[].parameters.classification N (Triton's classification extension): the top N classes per row as
    BYTES "score:index:label", labels from the output's labels file, the best one the reference's prediction."""
    request = load("requests", "fashion")
    request["outputs"] = [{"name": "logits", "parameters": {"classification": 3, "binary_data": False}}]
    status, _, body = curl("POST", "/v2/models/fashion/infer", json.dumps(request))
    assert status == 200, body[:300]
    (out,) = json.loads(body)["outputs"]
    rows = request["inputs"][0]["shape"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [rows, 3], out
    labels = open(os.path.join(EXAMPLES, "models", "fashion", "labels.txt")).read().split("\n")
    predicted = load("references", "fashion")["predicted"]
    for r in range(rows):
        entries = [e.split(":") for e in out["data"][r * 3:(r + 1) * 3]]
        scores = [float(e[0]) for e in entries]
        assert scores == sorted(scores, reverse=True), entries
        assert int(entries[0][1]) == predicted[r] and entries[0][2] == labels[predicted[r]], (entries, predicted)
    request["outputs"] = [{"name": "logits", "parameters": {"classification": "3"}}]
    expect_error("POST", "/v2/models/fashion/infer", json.dumps(request), 400, "classification")


def compressed_bodies_and_raw_binary():
    """Bodies sent gzip- and deflate-compressed with curl --data-binary give the plain request's outputs (JSON and
    binary, Inference-Header-Content-Length counting the uncompressed JSON); curl --compressed gets a compressed
    response; another coding is 415; a raw binary body (Inference-Header-Content-Length: 0) is the one input's
    tensor; an output's binary_data: false overrides binary_data_output: true."""
    request = json.dumps(load("requests", "fraud")).encode()
    binary, header_length = to_binary(load("requests", "fraud"))
    for coding, packed in [("gzip", gzip.compress(request)), ("deflate", zlib.compress(request))]:
        status, _, body = curl("POST", "/v2/models/fraud/infer", packed, ["Content-Type: application/json",
                                                                        f"Content-Encoding: {coding}"])
        assert status == 200, f"{coding}: {body[:300]}"
        check_outputs("fraud", json.loads(body)["outputs"])
        packed_binary = gzip.compress(binary) if coding == "gzip" else zlib.compress(binary)
        status, headers, body = curl("POST", "/v2/models/fraud/infer", packed_binary,
                                     ["Content-Type: application/octet-stream", f"Content-Encoding: {coding}",
                                      f"Inference-Header-Content-Length: {header_length}"])
        assert status == 200 and "inference-header-content-length" in headers, f"{coding} binary: {body[:300]}"
    # curl --compressed asks for deflate and gzip and inflates the answer itself.
    out = subprocess.run(["curl", "-sS", "--compressed", "-D", "-", "-X", "POST", "-H", "Content-Type: application/json",
                          "--data-binary", "@" + os.path.join(EXAMPLES, "requests", "fraud.json"),
                          BASE + "/v2/models/fraud/infer"], check=True, capture_output=True).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    assert re.search(r"^content-encoding: (gzip|deflate)\r?$", head, re.I | re.M), head
    check_outputs("fraud", json.loads(body)["outputs"])
    for coding, accept in [("gzip", "gzip"), ("deflate", "deflate")]:
        status, headers, body = curl("POST", "/v2/models/fraud/infer", request, [f"Accept-Encoding: {accept}",
                                                                                 "Content-Type: application/json"])
        assert headers.get("content-encoding") == coding, headers
        plain = gzip.decompress(body) if coding == "gzip" else zlib.decompress(body)
        check_outputs("fraud", json.loads(plain)["outputs"])
    status, headers, body = curl("POST", "/v2/models/fraud/infer", request, ["Content-Type: application/json",
                                                                          "Content-Encoding: br"])
    assert status == 415 and "gzip" in headers.get("accept-encoding", ""), (status, headers, body)
    status, _, body = curl("POST", "/v2/models/fraud/infer", b"\x1f\x8b not really gzip",
                           ["Content-Type: application/json", "Content-Encoding: gzip"])
    assert status == 400 and "gzip" in json.loads(body)["error"], (status, body)

    # Raw binary: the tensor's bytes alone.
    tensor = load("requests", "fraud")["inputs"][0]
    values = flat(tensor["data"])
    raw = struct.pack("<%df" % len(values), *values)
    status, headers, body = curl("POST", "/v2/models/fraud/infer", raw, ["Content-Type: application/octet-stream",
                                                                      "Inference-Header-Content-Length: 0"])
    assert status == 200, body[:300]
    json_length = int(headers["inference-header-content-length"])
    meta = json.loads(body[:json_length])
    (out,) = meta["outputs"]
    n = out["parameters"]["binary_data_size"] // 4
    out["data"] = list(struct.unpack_from("<%df" % n, body, json_length))
    check_outputs("fraud", [out])
    status, _, body = curl("POST", "/v2/models/fraud/infer", raw[:-4], ["Content-Type: application/octet-stream",
                                                                      "Inference-Header-Content-Length: 0"])
    assert status == 400 and "not a whole number" in json.loads(body)["error"], (status, body)

    # binary_data false on an output beats binary_data_output true.
    mixed = load("requests", "fraud")
    mixed["parameters"] = {"binary_data_output": True}
    mixed["outputs"] = [{"name": "probabilities", "parameters": {"binary_data": False}}]
    status, headers, body = curl("POST", "/v2/models/fraud/infer", json.dumps(mixed))
    assert status == 200 and "inference-header-content-length" not in headers, headers
    check_outputs("fraud", json.loads(body)["outputs"])


def expect_error(method, path, body, code, needle):
    status, headers, response = curl(method, path, body)
    assert status == code, f"{method} {path}: HTTP {status}, expected {code}: {response[:200]}"
    error = json.loads(response)["error"]
    assert needle in error, f"error {error!r} does not mention {needle!r}"


def errors():
    expect_error("GET", "/v2/models/nosuchmodel", None, 404, "nosuchmodel")
    expect_error("POST", "/v2/models/nosuchmodel/infer", "{}", 404, "nosuchmodel")
    expect_error("POST", "/v2/models/fraud/infer", '{"inputs": [{"name": "features", ', 400, "JSON")
    wrong_shape = {"inputs": [{"name": "features", "shape": [1, 29], "datatype": "FP32", "data": [0.0] * 29}]}
    expect_error("POST", "/v2/models/fraud/infer", json.dumps(wrong_shape), 400, "shape")
    wrong_type = {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "INT64", "data": [0] * 30}]}
    expect_error("POST", "/v2/models/fraud/infer", json.dumps(wrong_type), 400, "datatype")
    short = {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 3}]}
    expect_error("POST", "/v2/models/fraud/infer", json.dumps(short), 400, "features")
    expect_error("GET", "/v2/models/fraud/infer", None, 405, "POST")


HOST_PATH = re.compile(r"(?<![\w.])/(?:tmp|work|home|root|usr|var|run|dev/shm|srv|opt)/")


def assert_no_host_paths(body, what):
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    for path in (TMP, os.path.realpath(TMP), ROOT):
        assert path not in text, f"{what}: body names the host path {path}: {text[:300]}"
    assert not HOST_PATH.search(text), f"{what}: body names a host path: {text[:300]}"


def expect_input_error(body, needle, headers=(), path="/v2/models/fraud/infer", method="POST"):
    status, _, response = curl(method, path, body, headers)
    assert status == 400, f"{needle}: HTTP {status}, expected 400: {response[:200]}"
    error = json.loads(response)["error"]
    assert needle in error, f"error {error!r} does not mention {needle!r}"
    assert_no_host_paths(response, needle)


def input_errors():
    """Ragged data, empty dims, repeated keys, impossible binary sizes: 400 naming the problem."""
    row = [0.0] * 30
    ragged = {"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP32", "data": [row, row[:29]]}]}
    expect_input_error(json.dumps(ragged), "data[1] has 29 item(s)")
    ragged_same_count = {"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP32", "data": [row + row]}]}
    expect_input_error(json.dumps(ragged_same_count), "data has 1 item(s)")
    empty = {"inputs": [{"name": "features", "shape": [0, 30], "datatype": "FP32", "data": []}]}
    expect_input_error(json.dumps(empty), "every dimension must be at least 1")
    one = json.dumps({"name": "features", "shape": [1, 30], "datatype": "FP32", "data": row})
    expect_input_error('{"inputs":[%s],"inputs":[%s]}' % (one, one), "key 'inputs' appears more than once")
    expect_input_error('{"inputs":[{"name":"features","shape":[1,30],"shape":[1,30],"datatype":"FP32","data":%s}]}'
                       % json.dumps(row), "inputs[0]: key 'shape' appears more than once")
    expect_input_error('{"parameters":{"timeout_ms":5,"timeout_ms":9000},"inputs":[%s]}' % one,
                       "parameters: key 'timeout_ms' appears more than once")
    expect_input_error('{"keep_alive_s": 30, "keep_alive_s": 60}', "'keep_alive_s': appears twice",
                       path="/v2/models/fraud/settings", method="PUT")
    for shape, size, needle in [([1, 30], 119, "does not match shape"),
                                ([1, 30], 2**62, "exceeds the 120 bytes"),
                                ([2**40, 2**40], 8, "has too many elements"),
                                ([2**61], 8, "does not match shape [2305843009213693952]")]:
        header = json.dumps({"inputs": [{"name": "features", "shape": shape, "datatype": "FP32",
                                         "parameters": {"binary_data_size": size}}]}).encode()
        expect_input_error(header + bytes(120), needle,
                           headers=(f"Inference-Header-Content-Length: {len(header)}",
                                    "Content-Type: application/octet-stream"))
    # The model still serves.
    infer_json("fraud")


def model_error_is_short():
    """An error inside the model: 500 with the error line, no traceback, no host paths; the log has it all."""
    body = json.dumps({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]})
    status, _, response = curl("POST", "/v2/models/mismatch/infer", body)
    assert status == 500, f"HTTP {status}: {response[:300]}"
    error = json.loads(response)["error"]
    assert "The size of tensor a (3) must match the size of tensor b (4)" in error, error
    assert "Traceback" not in error and "\n" not in error and len(error) < 400, error
    assert_no_host_paths(response, "model error")
    assert "Traceback of TorchScript" in open(os.path.join(TMP, "server.log")).read(), "full traceback not logged"
    status, _, response = curl("POST", "/v2/models/mismatch/infer", body.replace("[3]", "[2]").replace("1, 2, 3", "1, 2"))
    assert status == 200, response[:200]


def no_host_paths_in_bodies():
    """Repository index, load errors, 404s: model names and repository-relative paths only."""
    status, _, body = curl("POST", "/v2/repository/index", "{}")
    assert status == 200
    assert_no_host_paths(body, "index")
    assert "broken/config.json" in body.decode(), body[:400]
    status, _, body = curl("POST", "/v2/repository/models/broken/load")
    assert status == 400 and b"broken/config.json" in body, body[:300]
    assert_no_host_paths(body, "load broken")
    for method, path in [("POST", "/v2/repository/models/nosuchmodel/load"), ("GET", "/v2/models/nosuchmodel/ready"),
                         ("GET", "/v2/models/nosuchmodel"), ("GET", "/v2/models/fraud/status")]:
        status, _, body = curl(method, path)
        assert_no_host_paths(body, path)


def metadata_and_health():
    status, _, body = curl("GET", "/v2")
    assert status == 200 and "binary_tensor_data" in json.loads(body)["extensions"]
    # Right after start `large` (100 MB) is still being prepared: not ready, and the body says which and why.
    status, _, body = curl("GET", "/v2/health/ready")
    assert status == 400, f"ready while large prepares: HTTP {status} {body[:300]}"
    not_ready = {m["name"]: m["reason"] for m in json.loads(body)["models"]}
    assert "large" in not_ready and ("preparing" in not_ready["large"] or "zygote" in not_ready["large"]), not_ready
    status, _, body = curl("GET", "/v2/models/large/ready")
    assert status == 400 and "large" in json.loads(body)["error"], (status, body)
    # Ready once every model's artifact is prepared (or failed) and the zygote is up: wait for it.
    for _ in range(1200):
        if curl("GET", "/v2/health/ready")[0] == 200:
            break
        time.sleep(0.1)
    # The first request after ready is a normal cold start: from the zygote with the prepared artifact, no wait.
    status, _, body = curl("POST", "/v2/models/large/infer", json.dumps(load("requests", "large")))
    assert status == 200, body[:300]
    params = json.loads(body)["parameters"]
    assert params["cold_start"] and params["start_level"] == "prepared", params
    parts = cold_start_parts(params)
    assert parts["spawner_wait"] == 0, parts
    whole = sum(parts[p] for p in ("spawner_wait", "spawn", "runtime_init", "model_load", "warmup", "attach"))
    assert abs(whole - parts["init"]) < 0.01, parts  # init is the whole start, its parts add up to it
    for path in ["/v2/health/live", "/v2/health/ready"] + [f"/v2/models/{m}/ready" for m in MODELS]:
        status, _, body = curl("GET", path)
        assert status == 200, f"{path}: HTTP {status}"
    status, _, body = curl("GET", "/v2/models/fashion")
    meta = json.loads(body)
    assert meta["inputs"][0] == {"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}, meta


def hey(model, args, request_model=None):
    request = os.path.join(TMP, f"hey_{model}.json")
    with open(request, "w") as f:
        json.dump(load("requests", request_model or model), f)
    cmd = ["hey", *args, "-m", "POST", "-T", "application/json", "-D", request, f"{BASE}/v2/models/{model}/infer"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def status_counts(hey_output):
    return {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", hey_output)}


def load_2000_requests():
    out, _ = hey("fraud", ["-n", "2000", "-c", "16"]).communicate(timeout=300)
    counts = status_counts(out)
    assert counts == {200: 2000}, f"status codes {counts}\n{out}"


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def bounded_bodies():
    """4 slow clients send 40 MB of 90 MB bodies to a server capped at 64 MB of
    buffered bodies and a 3 s body-read timeout: its RSS stays under the cap
    plus a margin, each client is answered 503 (past the cap) or 408 (at the
    timeout) and closed, and fraud requests meanwhile all succeed."""
    port = free_port()
    small = subprocess.Popen([THAW, "serve", "--repo", os.path.join(EXAMPLES, "models"), "--port", str(port),
                              "--usage-log", "", "--max-buffered-body-mb", "64", "--body-timeout-s", "3",
                              "--max-body-mb", "100"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    request = os.path.join(TMP, "hey_bounded_fraud.json")
    with open(request, "w") as f:
        json.dump(load("requests", "fraud"), f)
    try:
        for _ in range(200):
            if subprocess.run(["curl", "-s", "-o", "/dev/null", f"{base}/v2/health/live"]).returncode == 0:
                break
            time.sleep(0.05)
        for _ in range(5):  # a cold start on a busy machine may pass fraud's 5 s deadline
            warm = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H",
                                   "Content-Type: application/json", "--data-binary", "@" + request,
                                   f"{base}/v2/models/fraud/infer"], capture_output=True, text=True).stdout
            if warm == "200":
                break
        assert warm == "200", f"warm-up got {warm}"
        before = rss_mb(small.pid)
        answers = []

        def slow_client():
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 90000000\r\n\r\n")
                start = time.monotonic()
                try:
                    for _ in range(40):
                        s.sendall(b"1" * 1_000_000)
                except OSError:
                    pass
                s.settimeout(15)
                reply = b""
                try:
                    while chunk := s.recv(65536):
                        reply += chunk
                except OSError:
                    pass
                answers.append((reply[:12].decode(errors="replace"), time.monotonic() - start))

        clients = [threading.Thread(target=slow_client) for _ in range(4)]
        for c in clients:
            c.start()
        fraud = subprocess.Popen(["hey", "-z", "3s", "-c", "4", "-m", "POST", "-T", "application/json", "-D", request,
                                  f"{base}/v2/models/fraud/infer"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        peak = before
        while any(c.is_alive() for c in clients):
            peak = max(peak, rss_mb(small.pid))
            time.sleep(0.05)
        out, _ = fraud.communicate(timeout=60)
        counts = status_counts(out)
        assert set(counts) == {200}, f"fraud during slow bodies: {counts}\n{out}"
        assert peak - before < 64 + 48, f"server RSS grew {peak - before:.0f} MB (cap 64 MB)"
        codes = sorted(a[0] for a in answers)
        assert len(codes) == 4 and all(c in ("HTTP/1.1 503", "HTTP/1.1 408") for c in codes), answers
        assert "HTTP/1.1 408" in codes and "HTTP/1.1 503" in codes, answers
        for code, seconds in answers:
            if code == "HTTP/1.1 408":
                assert 2.5 < seconds < 8, f"408 after {seconds:.1f} s, timeout 3 s"
    finally:
        small.send_signal(signal.SIGTERM)
        try:
            small.wait(timeout=30)
        except subprocess.TimeoutExpired:
            small.kill()
            small.wait()


def make_repository():
    """The example models, plus `fashion-capped` (max_concurrency 2, max_queue 8) for back-pressure."""
    repo = os.path.join(TMP, "repo")
    os.makedirs(repo)
    for model in MODELS + ["textcls"]:
        os.symlink(os.path.join(EXAMPLES, "models", model), os.path.join(repo, model))
    capped = os.path.join(repo, "fashion-capped")
    os.makedirs(capped)
    os.symlink(os.path.join(EXAMPLES, "models", "fashion", "model.pt"), os.path.join(capped, "model.pt"))
    os.symlink(os.path.join(EXAMPLES, "models", "fashion", "labels.txt"), os.path.join(capped, "labels.txt"))
    with open(os.path.join(EXAMPLES, "models", "fashion", "config.json")) as f:
        config = json.load(f)
    config.update({"max_concurrency": 2, "max_queue": 8})
    with open(os.path.join(capped, "config.json"), "w") as f:
        json.dump(config, f)
    batched = os.path.join(repo, "fraud-batched")  # fixed batching: only a full batch of 8 rows goes at once
    os.makedirs(batched)
    os.symlink(os.path.join(EXAMPLES, "models", "fraud", "model.pt"), os.path.join(batched, "model.pt"))
    os.symlink(os.path.join(EXAMPLES, "models", "fraud", "labels.txt"), os.path.join(batched, "labels.txt"))
    with open(os.path.join(EXAMPLES, "models", "fraud", "config.json")) as f:
        config = json.load(f)
    config.update({"batching": "fixed", "max_batch_size": 8, "max_queue_delay_us": 2000000, "max_concurrency": 1})
    with open(os.path.join(batched, "config.json"), "w") as f:
        json.dump(config, f)
    metered = os.path.join(repo, "fraud-metered")  # only the SIGTERM check sends to it
    os.makedirs(metered)
    for name in ("model.pt", "config.json", "labels.txt"):
        os.symlink(os.path.join(EXAMPLES, "models", "fraud", name), os.path.join(metered, name))
    mismatch = os.path.join(repo, "mismatch")  # fails inside torch for inputs of exactly 3 elements
    os.makedirs(mismatch)
    os.symlink(os.path.join(ROOT, "src", "backend", "testdata", "mismatch_model.pt"), os.path.join(mismatch, "model.pt"))
    with open(os.path.join(mismatch, "config.json"), "w") as f:
        json.dump({"backend": "torchscript", "model_file": "model.pt", "memory_mb": 256,
                   "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
                   "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]}, f)
    broken = os.path.join(repo, "broken")  # a bad config must not stop the others
    os.makedirs(broken)
    os.symlink(os.path.join(EXAMPLES, "models", "fraud", "model.pt"), os.path.join(broken, "model.pt"))
    os.symlink(os.path.join(EXAMPLES, "models", "fraud", "labels.txt"), os.path.join(broken, "labels.txt"))
    with open(os.path.join(EXAMPLES, "models", "fraud", "config.json")) as f:
        config = json.load(f)
    config["memory_mb"] = 64  # below Lambda's minimum of 128
    with open(os.path.join(broken, "config.json"), "w") as f:
        json.dump(config, f)
    # fraud-reload: a copy of fraud's file, edited in place by the reload check.
    # fraud-wedge: max_concurrency 1, its settings changed mid-cold-start under load.
    for name, settings in (("fraud-reload", {}), ("fraud-wedge", {"max_concurrency": 1, "start_path": "exec", "timeout_ms": 20000})):
        path = os.path.join(repo, name)
        os.makedirs(path)
        shutil.copy(os.path.join(EXAMPLES, "models", "fraud", "model.pt"), os.path.join(path, "model.pt"))
        shutil.copy(os.path.join(EXAMPLES, "models", "fraud", "labels.txt"), os.path.join(path, "labels.txt"))
        with open(os.path.join(EXAMPLES, "models", "fraud", "config.json")) as f:
            config = json.load(f)
        config.update(settings)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f)
    looper = os.path.join(repo, "looper")  # its forward never returns at warm-up: a start that hangs
    os.makedirs(looper)
    os.symlink(os.path.join(ROOT, "src", "backend", "testdata", "loop_model.pt"), os.path.join(looper, "model.pt"))
    with open(os.path.join(looper, "config.json"), "w") as f:
        json.dump({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                   "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
                   "memory_mb": 256, "max_concurrency": 1, "start_timeout_ms": 1500}, f)
    alloc = os.path.join(repo, "alloc-128")  # allocates as many MiB as its input says, in 128 MB
    os.makedirs(alloc)
    os.symlink(os.path.join(ROOT, "src", "backend", "testdata", "alloc_model.pt"), os.path.join(alloc, "model.pt"))
    with open(os.path.join(alloc, "config.json"), "w") as f:
        json.dump({"backend": "torchscript", "model_file": "model.pt",
                   "inputs": [{"name": "mib", "datatype": "FP32", "shape": [-1, 1]}],
                   "outputs": [{"name": "same", "datatype": "FP32", "shape": [-1, 1]}],
                   "memory_mb": 128, "max_concurrency": 1, "threads": 1}, f)
    return repo


def wait_ready(model, seconds=60):
    for _ in range(seconds * 10):
        if curl("GET", f"/v2/models/{model}/ready")[0] == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{model} not ready after {seconds} s")


def ready_routes_tell_the_truth():
    """A model whose start hangs: deploying starts nothing, so its first request finds out (503 once
    start_timeout_ms passes); from then on it is not READY: its ready route says 400 and why, the index
    says why (and {"ready": true} leaves it out), and the server's ready route (strict, as Triton's)
    is 400 naming it."""
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    start = time.time()
    expect_error("POST", "/v2/models/looper/infer", json.dumps(request), 503, "did not become ready within start_timeout_ms=1500")
    assert time.time() - start < 15, "the stuck start was not timed out promptly"
    status, _, body = curl("GET", "/v2/models/looper/ready")
    assert status == 400 and "start_timeout_ms=1500" in json.loads(body)["error"], (status, body)
    status, _, body = curl("POST", "/v2/repository/index", "{}")
    looper = {m["name"]: m for m in json.loads(body)}["looper"]
    assert looper["state"] == "UNAVAILABLE" and "start_timeout_ms=1500" in looper["reason"], looper
    status, _, body = curl("POST", "/v2/repository/index", '{"ready": true}')
    ready_only = json.loads(body)
    assert status == 200 and ready_only and all(m["state"] == "READY" for m in ready_only), body
    assert "looper" not in {m["name"] for m in ready_only} and "fraud" in {m["name"] for m in ready_only}, body
    status, _, body = curl("GET", "/v2/health/ready")
    assert status == 400 and "looper" in json.loads(body)["error"], (status, body)


def corrupt_reload_keeps_old_version():
    """Reloading fraud-reload with a corrupt model.pt fails (503 naming the load error); the old one serves."""
    infer_json_as("fraud-reload", "fraud")
    model_file = os.path.join(TMP, "repo", "fraud-reload", "model.pt")
    good = open(model_file, "rb").read()
    with open(model_file, "wb") as f:
        f.write(b"this is not a TorchScript archive")
    infer_json_as("fraud-reload", "fraud")  # an edit without a reload changes nothing served
    expect_error("POST", "/v2/repository/models/fraud-reload/load", None, 503, "failed to load")
    infer_json_as("fraud-reload", "fraud")
    assert curl("GET", "/v2/models/fraud-reload/ready")[0] == 200
    with open(model_file, "wb") as f:
        f.write(good)
    status, _, body = curl("POST", "/v2/repository/models/fraud-reload/load")
    assert status == 200, body
    wait_ready("fraud-reload")  # new workers for the new version: its template loads first
    infer_json_as("fraud-reload", "fraud")


def settings_change_mid_cold_start_under_load():
    """fraud-wedge (max_concurrency 1): two PUTs 0.3 s apart during its first cold start, under
    16-way load; afterwards it serves within a few seconds and no instance is left retiring."""
    load_gen = hey("fraud-wedge", ["-z", "3s", "-c", "16", "-t", "20"], request_model="fraud")
    time.sleep(0.1)
    for threads in (2, 1):
        status, _, body = curl("PUT", "/v2/models/fraud-wedge/settings", json.dumps({"threads": threads}))
        assert status == 200, body
        time.sleep(0.3)
    out, _ = load_gen.communicate(timeout=60)
    counts = status_counts(out)
    assert counts and set(counts) <= {200, 429, 503, 504}, f"status codes {counts}\n{out}"
    # Within one cold start (an exec start takes up to ~6 s on a loaded 2-core machine).
    deadline = time.time() + 15
    while True:
        status, _, body = curl("POST", "/v2/models/fraud-wedge/infer", json.dumps(load("requests", "fraud")))
        if status == 200 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, f"fraud-wedge still failing after the load: HTTP {status} {body[:200]}"
    doc = json.loads(curl("GET", "/v2/models/fraud-wedge/status?memory=false")[2])
    assert [i["state"] for i in doc["instances"]] in (["idle"], ["busy"]), doc


def settings_api():
    status, _, body = curl("GET", "/v2/models/fashion-capped/settings")
    assert status == 200 and json.loads(body)["max_queue"] == 8, body
    infer_json_as("fashion-capped", "fashion")
    infer_json_as("fashion-capped", "fashion")  # called twice in a row: hot, so it gets its template
    warmed = wait_status("fashion-capped", lambda d: d["template_state"] == "ready", "template ready")
    before = warmed["template"]["pid"]
    warm_pids = sorted(i["pid"] for i in warmed["instances"])
    assert warm_pids, warmed
    status, _, body = curl("PUT", "/v2/models/fashion-capped/settings", '{"keep_alive_s": 30, "keep_alive_policy": "histogram"}')
    assert status == 200, body
    config = json.loads(body)
    assert config["keep_alive_s"] == 30 and config["keep_alive_policy"] == "histogram" and config["max_queue"] == 8, config
    assert json.loads(curl("GET", "/v2/models/fashion-capped/settings")[2])["keep_alive_s"] == 30
    # Keep-alive is the runtime's: the template stays. A field workers read replaces it.
    after = json.loads(curl("GET", "/v2/models/fashion-capped/status")[2])
    assert after["template"]["pid"] == before, after
    # ...and the just-warmed instances keep running: a keep-alive change restarts nothing.
    assert sorted(i["pid"] for i in after["instances"]) == warm_pids, (warm_pids, after)
    status, _, body = curl("PUT", "/v2/models/fashion-capped/settings", '{"threads": 2}')
    assert status == 200 and json.loads(body)["threads"] == 2, body
    # New instances start from a new template with the new settings.
    for _ in range(100):
        doc = json.loads(curl("GET", "/v2/models/fashion-capped/status")[2])
        if doc["template_state"] == "ready" and doc["template"]["pid"] != before and doc["template"]["ready"]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"template not replaced: {doc}")
    infer_json_as("fashion-capped", "fashion")
    # PUT settings survive a repository load while config.json is unchanged...
    status, _, body = curl("POST", "/v2/repository/models/fashion-capped/load")
    assert status == 200, body
    settings = json.loads(curl("GET", "/v2/models/fashion-capped/settings")[2])
    assert settings["keep_alive_s"] == 30 and settings["threads"] == 2 and settings["max_queue"] == 8, settings
    # ...and the file wins once it changed since (the log says so).
    config_path = os.path.join(TMP, "repo", "fashion-capped", "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["max_queue"] = 9
    with open(config_path, "w") as f:
        json.dump(config, f)
    status, _, body = curl("POST", "/v2/repository/models/fashion-capped/load")
    assert status == 200, body
    settings = json.loads(curl("GET", "/v2/models/fashion-capped/settings")[2])
    assert settings["keep_alive_s"] == 600 and settings["threads"] == 1 and settings["max_queue"] == 9, settings
    assert "model_settings_reset model=fashion-capped" in open(os.path.join(TMP, "server.log")).read()
    config["max_queue"] = 8
    with open(config_path, "w") as f:
        json.dump(config, f)
    assert curl("POST", "/v2/repository/models/fashion-capped/load")[0] == 200
    wait_ready("fashion-capped")
    infer_json_as("fashion-capped", "fashion")
    expect_error("PUT", "/v2/models/fashion-capped/settings", '{"inputs": []}', 400, "'inputs'")
    expect_error("PUT", "/v2/models/fashion-capped/settings", '{"memory_mb": 1}', 400, "'memory_mb'")
    expect_error("PUT", "/v2/models/fashion-capped/settings", '{"max_concurency": 1}', 400, "max_concurency")
    expect_error("PUT", "/v2/models/fashion-capped/settings", '{"keep_alive_s": ', 400, "JSON")
    expect_error("PUT", "/v2/models/nosuchmodel/settings", '{}', 404, "nosuchmodel")


def concurrent_curls_share_a_batch():
    """Four concurrent curls of the 2-row fraud request fill one batch of 8 rows; each
    response says so in `parameters`, carries a Server-Timing header and matches the reference."""
    infer_json_as("fraud-batched", "fraud")  # the first execution goes alone and teaches the cost
    request = load("requests", "fraud")
    procs = []
    for i in range(4):
        src, hdr = os.path.join(TMP, f"batch_req{i}"), os.path.join(TMP, f"batch_hdr{i}")
        with open(src, "w") as f:
            json.dump(dict(request, id=f"batch-{i}"), f)
        procs.append(subprocess.Popen(
            ["curl", "-sS", "--max-time", "60", "-D", hdr, "-H", "Content-Type: application/json",
             "--data-binary", "@" + src, BASE + "/v2/models/fraud-batched/infer"],
            stdout=subprocess.PIPE, text=True))
    for i, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=90)
        response = json.loads(out)
        assert response["id"] == f"batch-{i}", response
        params = response["parameters"]
        assert params["batch_size"] == 8 and params["batch_requests"] == 4, params
        check_outputs("fraud", response["outputs"])
        with open(os.path.join(TMP, f"batch_hdr{i}")) as f:
            timing = [line for line in f if line.lower().startswith("server-timing:")]
        assert timing and "batch_wait;dur=" in timing[0] and "compute;dur=" in timing[0], timing
    status = json.loads(curl("GET", "/v2/models/fraud-batched/status?memory=false")[2])
    # The batcher has learned a cost from these executions: a batch of 8 rows is predicted to take time.
    # (Intercept and slope alone depend on the CPU's noise: either may fit to 0 on a busy machine.)
    learned = status["batching"]["cost_intercept_us"] + 8 * status["batching"]["cost_per_row_us"]
    assert status["batching"]["mode"] == "fixed" and learned > 0, status
    assert status["instances"][0]["rss_kb"] is None, status  # memory=false skips the smaps readings


def repository_api():
    def index():
        status, _, body = curl("POST", "/v2/repository/index", "{}")
        assert status == 200, body
        return {m["name"]: m for m in json.loads(body)}
    models = index()
    assert all(models[m]["state"] == "READY" for m in MODELS), models
    assert models["broken"]["state"] == "UNAVAILABLE" and "memory_mb" in models["broken"]["reason"], models
    status, _, body = curl("POST", "/v2/repository/models/fraud/unload")
    assert status == 200, body
    expect_error("POST", "/v2/models/fraud/infer", json.dumps(load("requests", "fraud")), 404, "fraud")
    assert index()["fraud"]["state"] == "UNAVAILABLE"
    status, _, body = curl("POST", "/v2/repository/models/fraud/load")
    assert status == 200, body
    wait_ready("fraud")
    infer_json("fraud")
    expect_error("POST", "/v2/repository/models/broken/load", None, 400, "memory_mb")
    expect_error("POST", "/v2/repository/models/nosuchmodel/load", None, 404, "nosuchmodel")
    expect_error("POST", "/v2/repository/models/nosuchmodel/unload", None, 404, "nosuchmodel")


def back_pressure():
    """64 concurrent clients against 2 instances and a queue of 8: 200s and 429s, never a 5xx."""
    request = os.path.join(TMP, "hey_capped.json")
    with open(request, "w") as f:
        json.dump(load("requests", "fashion"), f)
    out = subprocess.run(["hey", "-n", "1000", "-c", "64", "-m", "POST", "-T", "application/json", "-D", request,
                          f"{BASE}/v2/models/fashion-capped/infer"], capture_output=True, text=True, timeout=300).stdout
    counts = status_counts(out)
    assert set(counts) <= {200, 429}, f"status codes {counts}\n{out}"
    assert counts.get(200, 0) > 0 and counts.get(429, 0) > 0, f"expected both 200 and 429: {counts}"
    status, headers, body = curl("GET", "/v2/models/fashion-capped/status")
    assert len(json.loads(body)["instances"]) <= 2, body


def worker_pids(model, with_template=False):
    """Instance pids from the server's status (forked instances share their template's command line)."""
    doc = json.loads(curl("GET", f"/v2/models/{model}/status")[2])
    pids = [i["pid"] for i in doc["instances"] if i["pid"] > 0]
    if with_template and doc.get("template"):
        pids.append(doc["template"]["pid"])
    return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read().lower()
    except OSError:
        return False


def kill_worker_mid_traffic():
    curl("POST", "/v2/models/fashion/infer", json.dumps(load("requests", "fashion")))  # make sure one runs
    load_gen = hey("fashion", ["-z", "4s", "-c", "4"])
    time.sleep(1.5)
    pids = worker_pids("fashion")
    assert pids, "no fashion worker running"
    os.kill(pids[0], signal.SIGKILL)
    out, _ = load_gen.communicate(timeout=60)
    counts = status_counts(out)
    assert set(counts) <= {200, 503}, f"unexpected status codes {counts}\n{out}"
    assert counts.get(200, 0) > 0, f"no successful requests: {counts}"
    assert server.poll() is None, "server exited"
    status, _, _ = curl("GET", "/v2/health/live")
    assert status == 200
    assert not alive(pids[0]), "killed worker still running"
    assert pids[0] not in worker_pids("fashion"), "killed worker still listed"
    infer_json("fashion")


def deadline_exceeded():
    infer_json("large")  # an instance is running
    request = load("requests", "large")
    request["parameters"] = {"timeout_ms": 1}
    status, _, body = curl("POST", "/v2/models/large/infer", json.dumps(request))
    assert status == 504, f"HTTP {status}: {body[:200]}"
    assert "deadline" in json.loads(body)["error"]
    infer_json("large")  # a fresh instance replaces the timed-out one


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def memory_limit():
    """memory_mb is a hard limit: a 128 MB model that allocates 2 GB gets 503 naming the limit, counted
    in /metrics and the usage log; the server's memory is untouched, fraud still served, the model
    recovers; a request larger than the instance can hold is refused with 400 before it runs."""
    enforced = re.search(r"memory_limit=(\S+)", open(os.path.join(TMP, "server.log")).read())
    assert enforced, "startup log does not say whether memory limits are enforced"
    if not enforced.group(1).startswith('"enforced') and not enforced.group(1).startswith("enforced"):
        print(f"SKIP memory limit: {enforced.group(0)}")
        return
    def ask(mib):
        request = {"inputs": [{"name": "mib", "shape": [1, 1], "datatype": "FP32", "data": [mib]}]}
        status, _, body = curl("POST", "/v2/models/alloc-128/infer", json.dumps(request))
        return status, json.loads(body)
    status, body = ask(8)
    assert status == 200, body
    doc = json.loads(curl("GET", "/v2/models/alloc-128/status")[2])
    assert doc["instances"] and doc["instances"][0]["memory_limit_bytes"] == 128 << 20, doc
    assert doc["instances"][0]["memory_usage_bytes"] > 0, doc
    before = rss_kb(server.pid)
    status, body = ask(2048)
    assert status == 503, f"HTTP {status}: {body}"
    assert "exceeded its memory limit (memory_mb=128) and was killed" in body["error"], body
    grown_mb = (rss_kb(server.pid) - before) / 1024
    assert grown_mb < 32, f"server RSS grew by {grown_mb:.0f} MB"
    infer_json("fraud")
    status, body = ask(8)
    assert status == 200, f"model did not recover: HTTP {status}: {body}"
    metrics = curl("GET", "/metrics")[2].decode()
    assert re.search(r'thaw_instance_oom_kills_total\{model="alloc-128"\} 1\b', metrics), "OOM kill not counted"
    time.sleep(1.5)  # the usage log is written once a second
    stops = [json.loads(line) for line in open(USAGE_LOG) if '"kind":"instance"' in line and "alloc-128" in line]
    assert any(r["stop_reason"] == "oom" for r in stops), f"no instance record with stop_reason oom: {stops}"
    rows = 17 << 20  # 68 MB of FP32: over half of 128 MB
    header = json.dumps({"inputs": [{"name": "mib", "shape": [rows, 1], "datatype": "FP32",
                                     "parameters": {"binary_data_size": rows * 4}}]}).encode()
    status, _, body = curl("POST", "/v2/models/alloc-128/infer", header + bytes(rows * 4),
                           [f"Inference-Header-Content-Length: {len(header)}", "Content-Type: application/octet-stream"])
    assert status == 400 and "memory_mb=128" in json.loads(body)["error"], f"HTTP {status}: {body[:300]}"


USAGE_LOG = os.path.join(TMP, "usage.jsonl")
X86 = {"request": 0.20 / 1e6, "on_demand": 0.0000166667, "provisioned": 0.0000041667, "provisioned_duration": 0.0000097222}


def prometheus_metrics():
    """/metrics passes `promtool check metrics` and has the families the issue asks for."""
    status, headers, body = curl("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0, f"promtool: {check.stdout.decode()}{check.stderr.decode()}"
    text = body.decode()
    for family in ["thaw_requests_total", "thaw_request_duration_seconds", "thaw_queue_duration_seconds",
                   "thaw_compute_duration_seconds", "thaw_cold_starts_total", "thaw_cold_start_duration_seconds",
                   "thaw_instances", "thaw_in_flight_requests", "thaw_queued_requests", "thaw_batch_rows",
                   "thaw_gigabyte_seconds_total", "thaw_cost_dollars_total", "thaw_instance_oom_kills_total"]:
        assert f"# TYPE {family} " in text, f"{family} missing"
    assert re.search(r'thaw_requests_total\{model="fraud",code="200"\} [1-9]', text), "no fraud 200s counted"
    assert re.search(r'thaw_instances\{model="fraud",state="idle"\} [1-9]', text), "no idle fraud instance"


def usage_stats():
    """/v2/stats and /v2/models/{m}/usage report invocations, latency, GB-s and dollars."""
    status, _, body = curl("GET", "/v2/models/fraud/usage")
    assert status == 200, body
    stats = json.loads(body)
    assert stats["ok"] >= 2000 and stats["latency_ms"]["p99"] > 0 and stats["usd"]["total"] > 0, stats
    assert stats["gb_s"]["on_demand_duration"] > 0 and stats["cold_starts"] >= 1, stats
    # fraud's instances are still up: their idle time so far counts before they stop.
    assert stats["gb_s"]["idle_warm"] > 0 and stats["held_gb_s"]["idle_warm"] > 0, stats
    everything = json.loads(curl("GET", "/v2/stats")[2])
    assert {m["model"] for m in everything["models"]} >= {"fraud", "fashion"}, everything["models"]
    assert everything["total"]["invocations"] >= stats["invocations"]


def hand_bill(path):
    """Dollars per model from the usage log, computed here from AWS's x86 prices (not thaw's code)."""
    bill = {}
    for line in open(path):
        r = json.loads(line)
        gb = r["memory_mb"] / 1024
        model = r["model"] or "(platform)"  # the zygote's held memory: its own row, billed nothing by Lambda
        m = bill.setdefault(model, 0.0)
        if r["kind"] == "invocation" and r["instance_id"]:
            billed_s = max(1, math.ceil(r["compute_us"] / 1000)) / 1000  # each execution rounded up to 1 ms
            price = X86["provisioned_duration"] if r["provisioned"] else X86["on_demand"]
            m += X86["request"] + billed_s * gb * r["share"] * price
            if r["cold_start"] and not r["provisioned"]:  # init is billed (AWS prices page, 2025)
                m += max(1, math.ceil(r["init_us"] / 1000)) / 1000 * gb * r["share"] * X86["on_demand"]
        elif r["kind"] == "provisioned":
            m += r["instances"] * (r["end_wall_us"] - r["start_wall_us"]) / 1e6 * gb * X86["provisioned"]
        bill[model] = m
    return bill


@contextlib.contextmanager
def second_server(args, **popen):
    """A thaw serve of its own (thaw serve ARGS); killed on the way out if still running."""
    proc = subprocess.Popen([THAW, "serve"] + args, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_live(base=None, tries=200):
    """Polls /v2/health/live every 50 ms until it answers 200 (at most `tries` times)."""
    for _ in range(tries):
        try:
            if curl("GET", "/v2/health/live", base=base)[0] == 200:
                return
        except subprocess.CalledProcessError:
            time.sleep(0.05)


def usage_log_on_a_full_disk():
    repo = os.path.join(TMP, "repo-full")
    os.makedirs(repo)
    os.symlink(os.path.join(EXAMPLES, "models", "fraud"), os.path.join(repo, "fraud"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = os.path.join(TMP, "server-full.log")
    with open(log_path, "w") as log, second_server(["--repo", repo, "--port", str(port), "--usage-log", "/dev/full",
                                                   "--usage-log-buffer-mb", "1"], stdout=log,
                                                  stderr=subprocess.STDOUT) as full:
        wait_live(base)
        # 1 MB holds about 3,000 records: 4,800 requests (300 per connection) must overflow it.
        request = os.path.join(TMP, "hey_full.json")
        with open(request, "w") as f:
            json.dump(load("requests", "fraud"), f)
        out = subprocess.run(["hey", "-n", "4800", "-c", "16", "-m", "POST", "-T", "application/json", "-D", request,
                              f"{base}/v2/models/fraud/infer"], capture_output=True, text=True, timeout=300).stdout
        assert status_counts(out) == {200: 4800}, f"status codes {status_counts(out)}: {out[-600:]}"
        status, _, body = curl("GET", "/metrics", base=base)
        assert status == 200
        check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        assert check.returncode == 0, f"promtool: {check.stdout.decode()}{check.stderr.decode()}"
        text = body.decode()
        dropped = int(float(re.search(r"^thaw_usage_records_dropped_total (\S+)$", text, re.M).group(1)))
        errors = int(float(re.search(r"^thaw_usage_log_write_errors_total (\S+)$", text, re.M).group(1)))
        assert dropped > 0 and errors > 0, f"dropped {dropped}, write errors {errors}"
        assert re.search(r"^thaw_usage_log_healthy 0$", text, re.M), "usage log reported healthy"
        status, _, body = curl("GET", "/v2/health/ready", base=base)
        ready = json.loads(body)
        assert status == 200 and ready["ready"] is True, body
        usage = ready["usage_log"]
        assert usage["ok"] is False and "No space left on device" in usage["error"], usage
        assert usage["dropped"] >= dropped and usage["buffered"] > 0, usage
        assert_no_host_paths(body, "ready")
        full.send_signal(signal.SIGTERM)
        assert full.wait(timeout=60) == 0
    text = open(log_path).read()
    assert text.count("usage_log_error") == 1, "a failure streak is logged once"
    assert "usage_log_dropping" in text, "first drop not logged"
    lost = re.search(r"thaw: usage log: (\d+) usage record\(s\) were never written", text)
    assert lost and int(lost.group(1)) >= 4800, f"loss not reported at exit: {text[-800:]}"


def default_usage_log_location():
    """Without --usage-log the log goes to $THAW_STATE_DIR/usage.jsonl; a default directory that cannot be made
    stops the server (exit 2) with the path and the variable to set."""
    repo = os.path.join(TMP, "repo-state")
    os.makedirs(repo)
    os.symlink(os.path.join(EXAMPLES, "models", "fraud"), os.path.join(repo, "fraud"))
    env = {k: v for k, v in os.environ.items() if k not in ("THAW_STATE_DIR", "XDG_STATE_HOME")}
    port = free_port()
    refused = subprocess.run([THAW, "serve", "--repo", repo, "--port", str(port)], capture_output=True, text=True,
                             timeout=60, env=dict(env, HOME="/proc/no-home"))
    assert refused.returncode == 2, f"exit {refused.returncode}: {refused.stderr[-600:]}"
    assert "/proc/no-home/.local/state/thaw/usage.jsonl" in refused.stderr, refused.stderr[-600:]
    assert "THAW_STATE_DIR" in refused.stderr, refused.stderr[-600:]
    state_dir = os.path.join(TMP, "state")
    with second_server(["--repo", repo, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(env, THAW_STATE_DIR=state_dir)) as served:
        base = f"http://127.0.0.1:{port}"
        wait_live(base, tries=400)
        status, _, _ = curl("POST", "/v2/models/fraud/infer", json.dumps(load("requests", "fraud")).encode(), base=base)
        assert status == 200, status
        served.send_signal(signal.SIGTERM)
        assert served.wait(timeout=60) == 0
    with open(os.path.join(state_dir, "usage.jsonl")) as f:
        assert any('"fraud"' in line for line in f), "no fraud record in $THAW_STATE_DIR/usage.jsonl"


def main():
    global server
    if not os.access(THAW, os.X_OK):
        sys.exit(f"{THAW} not built; run scripts/build")
    log_path = os.path.join(TMP, "server.log")
    log = open(log_path, "w")
    server = subprocess.Popen([THAW, "serve", "--repo", make_repository(), "--port", str(PORT), "--usage-log", USAGE_LOG,
                               "--grpc-port", str(GRPC_PORT)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_live()
        check("metadata and health", metadata_and_health)
        check("cold start from zero (zygote + prepared artifact), then from the template it started: breakdown, level",
              cold_start_breakdown)
        for model in ("fraud-xgb", "fashion-onnx"):
            check(f"{model} (another engine): zygote start loads the model, template fork loads nothing, a killed "
                  "instance fails only its own model", lambda m=model: engine_start_paths_and_isolation(m))
        check("status: instance forked from its template shares its pages (PSS < RSS)", status_shows_shared_memory)
        check("warm: POST /warm?instances=2 starts instances ahead of traffic", warm_ahead_of_traffic)
        check("workers confined (/proc): uid nobody, no_new_privs, seccomp, own namespaces, no server sockets",
              lambda: workers_are_confined(server.pid))
        for model in MODELS:
            check(f"{model}: JSON tensors match the Python reference", lambda m=model: infer_json(m))
            check(f"{model}: binary tensors match the Python reference", lambda m=model: infer_binary(m))
        check("nested data and output selection", nested_data_and_output_selection)
        check("Triton statistics: GET /v2/models/stats and per model, every field perf_analyzer reads",
              triton_statistics)
        check("Triton model configuration field by field; a Triton-format load override; PUT config is 405",
              triton_model_config)
        check("gzip/deflate bodies with curl --data-binary, compressed responses, raw binary, binary_data override",
              compressed_bodies_and_raw_binary)
        check("classification extension: top 3 classes with labels, the best the reference's", classification_extension)
        check("gRPC: a Python client (grpcio, stubs from the project's .proto): health, metadata, config, stats, "
              "ModelInfer raw and typed match the references, errors as gRPC codes", grpc_python_client)
        check("thaw load over gRPC and with binary tensors: every request 200", load_over_grpc_and_binary_http)
        check("thaw load against a closed port: exit 1, connection refused counted", load_against_a_closed_port)
        check("text in: textcls tokenizes raw UTF-8 in the model process; REST JSON, binary, raw and gRPC match "
              "the Python reference", text_in)
        check("errors: 404 unknown model, 400 bad bodies, 405 wrong method", errors)
        check("input errors: ragged data, zero dims, repeated keys, bad binary sizes -> 400, no host paths",
              input_errors)
        check("model error: 500 with the error line only, full traceback in the server log", model_error_is_short)
        check("no absolute host paths in index, load and 404 bodies", no_host_paths_in_bodies)
        check("settings API: GET/PUT config while serving, validated, new template", settings_api)
        check("repository API: index, unload, load; a bad model is listed, not served", repository_api)
        check("ready route and index: a model whose start hangs is UNAVAILABLE with the reason", ready_routes_tell_the_truth)
        check("reload with a corrupt model.pt: 503, the old version keeps serving", corrupt_reload_keeps_old_version)
        check("PUT config twice mid-cold-start under load (max_concurrency 1): serves again at once",
              settings_change_mid_cold_start_under_load)
        check("4 concurrent curls on a batching model: one batch of 8 rows, batch_size in parameters", concurrent_curls_share_a_batch)
        check("hey -n 2000 -c 16 on fraud: 2000 x 200", load_2000_requests)
        check("hey -c 64 on a model capped at 2 instances + queue 8: only 200 and 429", back_pressure)
        check("worker killed with SIGKILL mid-traffic: server recovers", kill_worker_mid_traffic)
        check("slow partial bodies: RSS bounded by the buffered-body cap, 503/408 and closed, fraud served",
              bounded_bodies)
        check("request past its deadline: 504, instance replaced", deadline_exceeded)
        check("memory_mb enforced: 2 GB in a 128 MB model -> 503 naming the limit, counted; server and fraud fine",
              memory_limit)
        check("/metrics: promtool check metrics passes; every family present", prometheus_metrics)
        check("/v2/stats and /v2/models/fraud/usage: invocations, p99, GB-s, dollars", usage_stats)

        def clean_shutdown():
            pids = [p for m in MODELS for p in worker_pids(m, with_template=True)]
            assert pids, "expected running workers before shutdown"
            # A slow request (1000 images) in flight when SIGTERM arrives is still answered.
            rows = 1000
            header = json.dumps({"inputs": [{"name": "image", "shape": [rows, 1, 28, 28], "datatype": "FP32",
                                             "parameters": {"binary_data_size": rows * 784 * 4}}]}).encode()
            body = os.path.join(TMP, "slow.bin")
            with open(body, "wb") as f:
                f.write(header + struct.pack("<%df" % (rows * 784), *([0.5] * (rows * 784))))
            slow = subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "POST",
                                     "-H", f"Inference-Header-Content-Length: {len(header)}", "-H", "Expect:",
                                     "-H", "Content-Type: application/octet-stream",
                                     "--data-binary", "@" + body, f"{BASE}/v2/models/fashion/infer"],
                                    stdout=subprocess.PIPE, text=True)
            # And fraud-metered under load from hey: every 200 it gets must be in the usage log.
            load = hey("fraud-metered", ["-z", "3s", "-c", "8"], request_model="fraud")
            time.sleep(0.8)
            server.send_signal(signal.SIGTERM)
            load_out, _ = load.communicate(timeout=60)
            code, seconds = slow.communicate(timeout=60)[0].split()
            assert code == "200", f"in-flight request got HTTP {code} on shutdown"
            assert float(seconds) > 0.15, f"request took {seconds} s: it finished before SIGTERM, so this proves nothing"
            assert server.wait(timeout=30) == 0, "non-zero exit"
            running = [p for p in pids if alive(p)]
            assert not running, f"workers still running after shutdown: {running}"
            # No worker of this server is left running, standby children
            # included (every worker's --model-dir is under run_dir).
            run_dir = re.search(r"run_dir=(\S+)", open(log_path).read()).group(1)
            left = subprocess.run(["pgrep", "-f", run_dir], capture_output=True, text=True).stdout.split()
            assert not left, f"processes left after shutdown: {left}"
            answered = status_counts(load_out).get(200, 0)
            logged = sum(1 for line in open(USAGE_LOG) if '"model":"fraud-metered"' in line and
                         json.loads(line).get("http_status") == 200)
            assert answered > 0 and logged == answered, f"hey got {answered} x 200, usage log has {logged}"
        check("SIGTERM under load: in-flight answered, no usage record lost, exit 0, workers stop", clean_shutdown)

        def cost_equals_hand_bill():
            run = subprocess.run([THAW, "cost", "--usage-log", USAGE_LOG, "--json"], capture_output=True, text=True)
            assert run.returncode == 0, run.stderr
            report = json.loads(run.stdout)
            expected = hand_bill(USAGE_LOG)
            for row in report["models"]:
                want = expected[row["model"]]
                assert abs(row["usd"]["total"] - want) <= 1e-9 + 1e-9 * want, f"{row['model']}: {row['usd']} vs {want}"
            assert abs(report["total"]["usd"]["total"] - sum(expected.values())) < 1e-8
            table = subprocess.run([THAW, "cost", "--usage-log", USAGE_LOG], capture_output=True, text=True).stdout
            assert "fraud" in table and "$" in table, table
        check("thaw cost on the usage log equals a bill computed by hand from AWS prices", cost_equals_hand_bill)
        check("--usage-log /dev/full: requests served, drops counted in /metrics and ready, loss reported at exit",
              usage_log_on_a_full_disk)
        check("without --usage-log the log goes to $THAW_STATE_DIR; an unwritable default stops the server naming it",
              default_usage_log_location)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    failed_checks = failed()
    if failed_checks:
        print("--- server log (last 60 lines) ---")
        print("".join(open(log_path).readlines()[-60:]))
    print(f"e2e: {len(results) - len(failed_checks)} passed, {len(failed_checks)} failed")
    sys.exit(1 if failed_checks else 0)


if __name__ == "__main__":
    main()
