#!/usr/bin/python3
"""End-to-end test of `thaw optimize` and `thaw variants` with the real binary,
Debian's python3-torch and a live server.

`thaw optimize fraud --method int8-dynamic` makes an int8 variant in a copy of
the example repository; its variant.json must hold a test accuracy measured on
fraud's held-out split (within 2 points of the base, whose own accuracy is
measured again and must equal accuracy.json's), a smaller file, and the
variant's outputs for fraud's sample request. `thaw variants` lists it beside
the base. `thaw serve` then serves the variant and its answer must equal the
outputs Python computed from the same file. Bad requests (a method that does
not apply, an unknown method, a missing model) fail with a reason.
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (EXAMPLE_MODELS as MODELS, EXAMPLE_REQUESTS as REQUESTS, THAW, check,  # noqa: E402
                    finish, free_port, run_thaw, stop_server)

TMP = tempfile.mkdtemp(prefix="thaw_e2e_opt_")
REPO = os.path.join(TMP, "repo")
REFS = os.path.join(TMP, "refs")


def thaw(*args, timeout=600):
    return run_thaw(*args, cwd=TMP, timeout=timeout)


def optimize_fraud_int8():
    os.makedirs(REPO)
    shutil.copytree(os.path.join(MODELS, "fraud"), os.path.join(REPO, "fraud"))
    run = thaw("optimize", "fraud", "--repo", REPO, "--method", "int8-dynamic",
               "--request", os.path.join(REQUESTS, "fraud.json"), "--references-dir", REFS)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[optimize] fraud-int8-dynamic: test accuracy" in run.stdout, run.stdout
    variant = json.load(open(os.path.join(REPO, "fraud-int8-dynamic", "variant.json")))
    base_accuracy = json.load(open(os.path.join(MODELS, "fraud", "accuracy.json")))["test_accuracy"]
    assert variant["base"] == "fraud" and variant["method"] == "int8-dynamic", variant
    assert variant["quantized_engine"] == "onednn", variant
    assert variant["test_samples"] == 114, variant  # fraud's held-out split
    assert variant["base_test_accuracy"] == base_accuracy, (variant, base_accuracy)
    assert abs(variant["test_accuracy"] - base_accuracy) <= 0.02, variant
    assert variant["file_bytes"] < variant["base_file_bytes"], variant
    for f in ("model.pt", "config.json", "labels.txt", "accuracy.json"):
        assert os.path.isfile(os.path.join(REPO, "fraud-int8-dynamic", f)), f
    assert os.path.isfile(os.path.join(REFS, "fraud-int8-dynamic.json"))


def variants_lists_base_and_variant():
    run = thaw("variants", "fraud", "--repo", REPO, "--json")
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert [r["model"] for r in rows] == ["fraud", "fraud-int8-dynamic"], rows
    assert rows[1]["method"] == "int8-dynamic" and rows[1]["file_bytes"] < rows[0]["file_bytes"], rows
    table = thaw("variants", "fraud", "--repo", REPO)
    assert table.returncode == 0 and "fraud-int8-dynamic" in table.stdout and " pt" in table.stdout, table.stdout


def served_variant_matches_python():
    port = free_port()
    log = open(os.path.join(TMP, "server.log"), "w")
    server = subprocess.Popen([THAW, "serve", "--repo", REPO, "--port", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if urllib.request.urlopen(base + "/v2/models/fraud-int8-dynamic/ready", timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        body = open(os.path.join(REQUESTS, "fraud.json"), "rb").read()
        req = urllib.request.Request(base + "/v2/models/fraud-int8-dynamic/infer", data=body,
                                     headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
        want = json.load(open(os.path.join(REFS, "fraud-int8-dynamic.json")))["outputs"][0]
        got = answer["outputs"][0]
        assert got["shape"] == want["shape"], (got, want)
        diff = max(abs(a - b) for a, b in zip(got["data"], want["data"]))
        assert diff <= 1e-6, (diff, got["data"], want["data"])
    finally:
        stop_server(server, log)


def measured_variants_feed_the_planner():
    run = thaw("variants", "fraud", "--repo", REPO, "--measure", "--request", os.path.join(REQUESTS, "fraud.json"),
               "--reps", "20", "--cold-reps", "2", "--rate", "10", "--duration-s", "600", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["model"]: r for r in json.loads(run.stdout)}
    for name in ("fraud", "fraud-int8-dynamic"):
        r = rows[name]
        for k in ("b1_ms", "b8_ms", "cold_template_ms", "cold_exec_ms", "private_mb", "gb_s_per_million",
                  "usd_per_million"):
            assert r[k] is not None and r[k] > 0, (name, k, r)
        assert r["cold_template_ms"] < r["cold_exec_ms"], r  # a fork, not a fresh process
        assert os.path.isfile(os.path.join(REPO, name, "profile.json")), name
    common = ["plan", "--poisson", "10", "--duration-s", "300", "--profile", os.path.join(REPO, "fraud", "profile.json"),
              "--config", os.path.join(REPO, "fraud", "config.json"), "--slo-p99-ms", "100",
              "--memory-grid", "512", "--keep-alive-grid", "60", "--min-instances-grid", "0"]
    plan = thaw(*common, "--accuracy-floor", "base-1pt", "--out", os.path.join(TMP, "plan.json"))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    lines = {line.split()[0]: line for line in plan.stdout.splitlines() if line.strip().startswith("fraud")}
    assert "chosen" in lines["fraud"] or "chosen" in lines["fraud-int8-dynamic"], plan.stdout
    chosen = json.load(open(os.path.join(TMP, "plan.json")))
    assert os.path.isfile(os.path.join(TMP, "plan.json")), plan.stdout
    assert chosen["memory_mb"] == 512, chosen
    # A floor above every accuracy: nothing qualifies.
    none = thaw(*common, "--accuracy-floor", "0.99", "--out", os.path.join(TMP, "none.json"))
    assert none.returncode == 1 and "No variant meets" in none.stdout, none.stdout
    assert none.stdout.count("below the accuracy floor") == 2, none.stdout


def bad_requests_fail_with_a_reason():
    wrong = thaw("optimize", "fraud", "--repo", REPO, "--method", "int8-static")
    assert wrong.returncode != 0 and "int8-static applies to FashionNet" in wrong.stdout + wrong.stderr, wrong
    unknown = thaw("optimize", "fraud", "--repo", REPO, "--method", "int4")
    assert unknown.returncode == 2 and "--method" in unknown.stderr, unknown.stderr
    missing = thaw("optimize", "nosuch", "--repo", REPO)
    assert missing.returncode == 2 and "'nosuch' not found" in missing.stderr, missing.stderr
    corrupt = os.path.join(REPO, "corrupt")
    os.makedirs(corrupt)
    shutil.copyfile(os.path.join(MODELS, "fraud", "config.json"), os.path.join(corrupt, "config.json"))
    with open(os.path.join(corrupt, "model.pt"), "w") as f:
        f.write("not a zip archive")
    bad = thaw("optimize", "corrupt", "--repo", REPO)
    assert bad.returncode == 1 and "not a TorchScript model" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr, bad.stderr
    shutil.rmtree(corrupt)
    none = thaw("variants", "nosuch", "--repo", REPO)
    assert none.returncode == 2 and "'nosuch' not found" in none.stderr, none.stderr


def main():
    if not os.access(THAW, os.X_OK):
        sys.exit("build/thaw is missing: run scripts/build")
    check("thaw optimize makes an int8 fraud variant with its accuracy measured on fraud's test split",
          optimize_fraud_int8)
    check("thaw variants lists the base and its variant", variants_lists_base_and_variant)
    check("thaw serve serves the variant; its answer equals Python's from the same file", served_variant_matches_python)
    check("thaw variants --measure profiles each variant; thaw plan --accuracy-floor chooses among them",
          measured_variants_feed_the_planner)
    check("thaw optimize and variants refuse bad requests with a reason", bad_requests_fail_with_a_reason)
    finish("optimize", TMP)


if __name__ == "__main__":
    main()
