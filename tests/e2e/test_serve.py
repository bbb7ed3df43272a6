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
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import check, failed, free_port, results  # noqa: E402

THAW = os.path.join(ROOT, "build", "thaw")
EXAMPLES = os.path.join(ROOT, "examples")
MODELS = ["fraud", "fashion", "textenc", "large"]
PACK = {"FP32": "f", "FP64": "d", "INT64": "q", "INT32": "i", "BOOL": "?"}

TMP = tempfile.mkdtemp(prefix="thaw_e2e_")


PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"


def curl(method, path, body=None, headers=()):
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
    cmd.append(BASE + path)
    status = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    response_headers = {}
    with open(hdr) as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                response_headers[k.strip().lower()] = v.strip()
    with open(out, "rb") as f:
        return int(status), response_headers, f.read()


def load(kind, model):
    with open(os.path.join(EXAMPLES, kind, model + ".json")) as f:
        return json.load(f)


def flat(data):
    if isinstance(data, list):
        return [x for item in data for x in flat(item)]
    return [data]


def assert_close(got, want, what):
    assert len(got) == len(want), f"{what}: {len(got)} values, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if abs(g - w) > 1e-4 + 1e-3 * abs(w):
            raise AssertionError(f"{what}[{i}] = {g}, reference {w}")


def check_outputs(model, outputs):
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


def cold_start_breakdown():
    """The first request to a scaled-to-zero model reports where its cold start went."""
    status, headers, body = curl("POST", "/v2/models/textenc/infer", json.dumps(load("requests", "textenc")))
    assert status == 200, body[:200]
    params = json.loads(body)["parameters"]
    assert params["cold_start"] is True, params
    assert params["start_path"] == "template", params
    parts = params["cold_start_ms"]
    for key in ["queue", "spawn", "runtime_init", "model_load", "warmup", "first_inference", "total"]:
        assert key in parts and parts[key] >= 0, parts
    assert parts["model_load"] == 0 and parts["warmup"] == 0, "a template's instance loads nothing: " + str(parts)
    assert headers["x-thaw-cold-start"].startswith("template;"), headers
    status, _, body = curl("POST", "/v2/models/textenc/infer", json.dumps(load("requests", "textenc")))
    assert json.loads(body)["parameters"]["cold_start"] is False


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


def nested_data_and_output_selection():
    request = load("requests", "fraud")
    tensor = request["inputs"][0]
    rows, cols = tensor["shape"]
    tensor["data"] = [tensor["data"][r * cols:(r + 1) * cols] for r in range(rows)]
    request["outputs"] = [{"name": "probabilities"}]
    status, _, body = curl("POST", "/v2/models/fraud/infer", json.dumps(request))
    assert status == 200, body
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


def metadata_and_health():
    status, _, body = curl("GET", "/v2")
    assert status == 200 and "binary_tensor_data" in json.loads(body)["extensions"]
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


def make_repository():
    """The example models, plus `fashion-capped` (max_concurrency 2, max_queue 8) for back-pressure."""
    repo = os.path.join(TMP, "repo")
    os.makedirs(repo)
    for model in MODELS:
        os.symlink(os.path.join(EXAMPLES, "models", model), os.path.join(repo, model))
    capped = os.path.join(repo, "fashion-capped")
    os.makedirs(capped)
    os.symlink(os.path.join(EXAMPLES, "models", "fashion", "model.pt"), os.path.join(capped, "model.pt"))
    with open(os.path.join(EXAMPLES, "models", "fashion", "config.json")) as f:
        config = json.load(f)
    config.update({"max_concurrency": 2, "max_queue": 8})
    with open(os.path.join(capped, "config.json"), "w") as f:
        json.dump(config, f)
    batched = os.path.join(repo, "fraud-batched")  # fixed batching: only a full batch of 8 rows goes at once
    os.makedirs(batched)
    os.symlink(os.path.join(EXAMPLES, "models", "fraud", "model.pt"), os.path.join(batched, "model.pt"))
    with open(os.path.join(EXAMPLES, "models", "fraud", "config.json")) as f:
        config = json.load(f)
    config.update({"batching": "fixed", "max_batch_size": 8, "max_queue_delay_us": 2000000, "max_concurrency": 1})
    with open(os.path.join(batched, "config.json"), "w") as f:
        json.dump(config, f)
    metered = os.path.join(repo, "fraud-metered")  # only the SIGTERM check sends to it
    os.makedirs(metered)
    for name in ("model.pt", "config.json"):
        os.symlink(os.path.join(EXAMPLES, "models", "fraud", name), os.path.join(metered, name))
    broken = os.path.join(repo, "broken")  # a bad config must not stop the others
    os.makedirs(broken)
    os.symlink(os.path.join(EXAMPLES, "models", "fraud", "model.pt"), os.path.join(broken, "model.pt"))
    with open(os.path.join(EXAMPLES, "models", "fraud", "config.json")) as f:
        config = json.load(f)
    config["memory_mb"] = 64  # below Lambda's minimum of 128
    with open(os.path.join(broken, "config.json"), "w") as f:
        json.dump(config, f)
    return repo


def settings_api():
    status, _, body = curl("GET", "/v2/models/fashion-capped/config")
    assert status == 200 and json.loads(body)["max_queue"] == 8, body
    before = json.loads(curl("GET", "/v2/models/fashion-capped/status")[2])["template"]["pid"]
    status, _, body = curl("PUT", "/v2/models/fashion-capped/config", '{"keep_alive_s": 30, "keep_alive_policy": "histogram"}')
    assert status == 200, body
    config = json.loads(body)
    assert config["keep_alive_s"] == 30 and config["keep_alive_policy"] == "histogram" and config["max_queue"] == 8, config
    assert json.loads(curl("GET", "/v2/models/fashion-capped/config")[2])["keep_alive_s"] == 30
    # New instances start from a new template with the new settings.
    for _ in range(100):
        doc = json.loads(curl("GET", "/v2/models/fashion-capped/status")[2])
        if doc["template"] and doc["template"]["pid"] != before and doc["template"]["ready"]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"template not replaced: {doc}")
    infer_json_as("fashion-capped", "fashion")
    expect_error("PUT", "/v2/models/fashion-capped/config", '{"inputs": []}', 400, "'inputs'")
    expect_error("PUT", "/v2/models/fashion-capped/config", '{"memory_mb": 1}', 400, "'memory_mb'")
    expect_error("PUT", "/v2/models/fashion-capped/config", '{"max_concurency": 1}', 400, "max_concurency")
    expect_error("PUT", "/v2/models/fashion-capped/config", '{"keep_alive_s": ', 400, "JSON")
    expect_error("PUT", "/v2/models/nosuchmodel/config", '{}', 404, "nosuchmodel")


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
                   "thaw_gigabyte_seconds_total", "thaw_cost_dollars_total"]:
        assert f"# TYPE {family} " in text, f"{family} missing"
    assert re.search(r'thaw_requests_total\{model="fraud",code="200"\} [1-9]', text), "no fraud 200s counted"
    assert re.search(r'thaw_instances\{model="fraud",state="idle"\} [1-9]', text), "no idle fraud instance"


def usage_stats():
    """/v2/stats and /v2/models/{m}/stats report invocations, latency, GB-s and dollars."""
    status, _, body = curl("GET", "/v2/models/fraud/stats")
    assert status == 200, body
    stats = json.loads(body)
    assert stats["ok"] >= 2000 and stats["latency_ms"]["p99"] > 0 and stats["usd"]["total"] > 0, stats
    assert stats["gb_s"]["on_demand_duration"] > 0 and stats["cold_starts"] >= 1, stats
    everything = json.loads(curl("GET", "/v2/stats")[2])
    assert {m["model"] for m in everything["models"]} >= {"fraud", "fashion"}, everything["models"]
    assert everything["total"]["invocations"] >= stats["invocations"]


def hand_bill(path):
    """Dollars per model from the usage log, computed here from AWS's x86 prices (not thaw's code)."""
    bill = {}
    for line in open(path):
        r = json.loads(line)
        gb = r["memory_mb"] / 1024
        m = bill.setdefault(r["model"], 0.0)
        if r["kind"] == "invocation" and r["instance_id"]:
            billed_s = max(1, math.ceil(r["compute_us"] / 1000)) / 1000  # each execution rounded up to 1 ms
            price = X86["provisioned_duration"] if r["provisioned"] else X86["on_demand"]
            m += X86["request"] + billed_s * gb * r["share"] * price
            if r["cold_start"] and not r["provisioned"]:  # init is billed (AWS prices page, 2025)
                m += max(1, math.ceil(r["init_us"] / 1000)) / 1000 * gb * r["share"] * X86["on_demand"]
        elif r["kind"] == "provisioned":
            m += r["instances"] * (r["end_wall_us"] - r["start_wall_us"]) / 1e6 * gb * X86["provisioned"]
        bill[r["model"]] = m
    return bill


def main():
    global server
    if not os.access(THAW, os.X_OK):
        sys.exit(f"{THAW} not built; run scripts/build")
    log_path = os.path.join(TMP, "server.log")
    log = open(log_path, "w")
    server = subprocess.Popen([THAW, "serve", "--repo", make_repository(), "--port", str(PORT), "--usage-log", USAGE_LOG],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                if curl("GET", "/v2/health/live")[0] == 200:
                    break
            except subprocess.CalledProcessError:
                time.sleep(0.05)
        check("metadata and health", metadata_and_health)
        check("cold start from zero: template path, breakdown in parameters and header", cold_start_breakdown)
        check("status: instance forked from its template shares its pages (PSS < RSS)", status_shows_shared_memory)
        check("warm: POST /warm?instances=2 starts instances ahead of traffic", warm_ahead_of_traffic)
        for model in MODELS:
            check(f"{model}: JSON tensors match the Python reference", lambda m=model: infer_json(m))
            check(f"{model}: binary tensors match the Python reference", lambda m=model: infer_binary(m))
        check("nested data and output selection", nested_data_and_output_selection)
        check("errors: 404 unknown model, 400 bad bodies, 405 wrong method", errors)
        check("settings API: GET/PUT config while serving, validated, new template", settings_api)
        check("repository API: index, unload, load; a bad model is listed, not served", repository_api)
        check("4 concurrent curls on a batching model: one batch of 8 rows, batch_size in parameters", concurrent_curls_share_a_batch)
        check("hey -n 2000 -c 16 on fraud: 2000 x 200", load_2000_requests)
        check("hey -c 64 on a model capped at 2 instances + queue 8: only 200 and 429", back_pressure)
        check("worker killed with SIGKILL mid-traffic: server recovers", kill_worker_mid_traffic)
        check("request past its deadline: 504, instance replaced", deadline_exceeded)
        check("/metrics: promtool check metrics passes; every family present", prometheus_metrics)
        check("/v2/stats and /v2/models/fraud/stats: invocations, p99, GB-s, dollars", usage_stats)

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
