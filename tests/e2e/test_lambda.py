"""End-to-end test of Lambda runtime mode (`thaw lambda`): npm @vercel/fun serves the Lambda Runtime API offline and
runs a `provided`-runtime function whose bootstrap is `thaw lambda`, as AWS Lambda would. Checks: init (the model's
first instance started before the first event) then invocations reusing the process with KServe v2 payloads that match
the Python reference, API Gateway / function URL events (payload 2.0 and REST 1.0) to v2 routes, bad events and bad
tensors answered as invocation errors naming the problem, a model that cannot load reported as an init error, and
Lambda's REPORT line per invocation with Init Duration on the first.

Run: /usr/bin/python3 tests/e2e/test_lambda.py"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import EXAMPLE_MODELS, THAW, check, check_outputs, finish, load, npm_ci  # noqa: E402

TMP = tempfile.mkdtemp(prefix="thaw_e2e_lambda_")
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lambda")
state = {}


def install_npm_packages():
    npm_ci(DRIVER, "@vercel/fun")
    state["npm"] = True


def function_dir(name, models):
    """A function's code: bootstrap (exec thaw lambda) and models/<m> for each model (copied)."""
    d = os.path.join(TMP, name)
    os.makedirs(os.path.join(d, "models"))
    with open(os.path.join(d, "bootstrap"), "w") as f:
        f.write(f"#!/bin/sh\nexec {THAW} lambda\n")
    os.chmod(os.path.join(d, "bootstrap"), 0o755)
    for m in models:
        shutil.copytree(os.path.join(EXAMPLE_MODELS, m), os.path.join(d, "models", m))
    return d


def invoke(directory, handler, payloads, memory_mb=512):
    spec = os.path.join(TMP, f"spec-{handler}.json")
    json.dump({"directory": directory, "handler": handler, "memory_mb": memory_mb, "payloads": payloads},
              open(spec, "w"))
    run = subprocess.run(["node", os.path.join(DRIVER, "invoke.mjs"), spec], capture_output=True, text=True,
                         timeout=300, cwd=DRIVER)
    assert run.returncode == 0, f"driver exit {run.returncode}\n{run.stderr[-3000:]}"
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(payloads), f"{len(results)} results for {len(payloads)} payloads\n{run.stdout}"
    return results, run.stderr


def http_event_v2(method, path, body=None):
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
             "headers": {"content-type": "application/json"},
             "requestContext": {"http": {"method": method, "path": path}}, "isBase64Encoded": False}
    if body is not None:
        event["body"] = body
    return event


def round_trips():
    fraud = load("requests", "fraud")
    bad = json.loads(json.dumps(fraud))
    bad["inputs"][0]["shape"] = [1, 3]
    bad["inputs"][0]["data"] = [1.0, 2.0, 3.0]
    payloads = [fraud, fraud, fraud,
                http_event_v2("POST", "/v2/models/fraud/infer", json.dumps(fraud)),
                http_event_v2("GET", "/v2/models/fraud"),
                {"httpMethod": "POST", "path": "/v2/models/fraud/infer", "headers": {"Content-Type": "application/json"},
                 "body": json.dumps(fraud), "isBase64Encoded": False},
                bad,
                {"hello": "world"},
                fraud]
    results, log = invoke(function_dir("fraud-fn", ["fraud"]), "fraud", payloads)
    for i in (0, 1, 2, 8):
        r = results[i]
        assert r["FunctionError"] is None, r
        check_outputs("fraud", json.loads(r["Payload"])["outputs"])
    for i in (3, 5):  # HTTP events: their response shape, the v2 body inside
        response = json.loads(results[i]["Payload"])
        assert response["statusCode"] == 200 and not response["isBase64Encoded"], response
        assert response["headers"]["content-type"].startswith("application/json"), response
        check_outputs("fraud", json.loads(response["body"])["outputs"])
    metadata = json.loads(results[4]["Payload"])
    assert metadata["statusCode"] == 200 and json.loads(metadata["body"])["name"] == "fraud", metadata
    error = json.loads(results[6]["Payload"])
    assert results[6]["FunctionError"] == "Handled" and error["errorType"] == "InvalidArgument", results[6]
    assert "shape" in error["errorMessage"], error
    error = json.loads(results[7]["Payload"])
    assert results[7]["FunctionError"] == "Handled" and error["errorType"] == "InvalidArgument", results[7]
    assert "neither a KServe v2 inference request" in error["errorMessage"], error
    reports = re.findall(r"^REPORT RequestId: (\S+)\tDuration: ([\d.]+) ms\tBilled Duration: (\d+) ms\t"
                         r"Memory Size: 512 MB\tMax Memory Used: (\d+) MB(?:\tInit Duration: ([\d.]+) ms)?$",
                         log, re.M)
    assert len(reports) == len(payloads), f"{len(reports)} REPORT lines for {len(payloads)} invocations\n{log[-3000:]}"
    assert reports[0][4], "the first REPORT has no Init Duration"
    assert not any(r[4] for r in reports[1:]), "Init Duration after the first invocation: the process was not reused"
    assert len({r[0] for r in reports}) == len(reports), "request ids repeat"
    for _, duration, billed, used, _ in reports:
        assert int(billed) == max(1, -(-float(duration) // 1)), (duration, billed)
        assert int(used) > 0
    warm = ", ".join(f"{float(r[1]):.2f}" for r in reports[1:3] + reports[8:9])
    trips = ", ".join(f"{r['ms']:.1f}" for r in results[:3])
    inside = ", ".join(f"{json.loads(results[i]['Payload'])['parameters']['total_ms']:.2f}" for i in (1, 2, 8))
    print(f"  init {float(reports[0][4]):.1f} ms; warm invocations: REPORT Duration {warm} ms, thaw's total_ms "
          f"{inside} ms; driver round trips {trips} ms", flush=True)
    assert "lambda_init" in log, log[-2000:]


def init_error():
    d = function_dir("broken-fn", ["fraud"])
    with open(os.path.join(d, "models", "fraud", "model.pt"), "wb") as f:
        f.write(b"this is not a TorchScript file")
    results, log = invoke(d, "fraud", [load("requests", "fraud")])
    r = results[0]
    assert r["FunctionError"] == "Unhandled", r
    payload = json.loads(r["Payload"])
    assert payload["errorType"] == "Runtime.InitError" and "model 'fraud'" in payload["errorMessage"], payload


def main():
    check("npm ci: @vercel/fun from tests/e2e/lambda's lock file", install_npm_packages)
    if state.get("npm"):
        check("init, then v2 payloads, HTTP events (2.0 and 1.0) and errors through the Runtime API; one REPORT "
              "line each, Init Duration on the first", round_trips)
        check("a model that cannot load: an init error naming it (Runtime.InitError)", init_error)
    finish("lambda", TMP)


if __name__ == "__main__":
    main()
