#!/usr/bin/python3
"""End-to-end test of the simulator tools with the real binary and a live server.

`thaw profile` measures two example models (quickly) with real workers;
`thaw simulate` runs a two-model CSV trace and an Azure Functions 2019 file
through them; `thaw plan` writes a config that `thaw serve` then loads;
`thaw replay` sends a two-model trace to a live server, and `thaw profile
--from-usage` builds a profile from that server's usage log, which the
simulator then runs on the same trace. Checks counts, routing, errors and
that the tools print no progress bar when not on a terminal.
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import json
import os
import re
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

TMP = tempfile.mkdtemp(prefix="thaw_e2e_sim_")


def thaw(*args, timeout=300):
    return run_thaw(*args, cwd=TMP, timeout=timeout)


def path(name):
    return os.path.join(TMP, name)


def config(model):
    return os.path.join(MODELS, model, "config.json")


def rows_of(model):
    return json.load(open(os.path.join(REQUESTS, model + ".json")))["inputs"][0]["shape"][0]


def by_model(report):
    return {row["model"]: row for row in report["models"]}


def write_csv_trace(name, arrivals):
    with open(path(name), "w") as f:
        f.write("timestamp_s,model\n" + "".join(f"{t:.6f},{m}\n" for t, m in arrivals))
    return path(name)


# 300 fraud requests at 100/s and 60 fashion requests at 20/s, over 3 s.
TWO_MODEL_TRACE = sorted([(i / 100, "fraud") for i in range(300)] + [(0.005 + i / 20, "fashion") for i in range(60)])


def profile_models():
    for model in ["fraud", "fashion"]:
        run = thaw("profile", model, "--out", path(model + ".profile.json"), "--threads", "1", "--batch-sizes",
                   f"{rows_of(model)},{2 * rows_of(model)}", "--paths", "template", "--reps", "5",
                   "--spread-reps", "40", "--cold-reps", "2", "--gap-ms", "1")
        assert run.returncode == 0, run.stderr
        assert run.stderr == "", f"progress or noise on stderr when not a terminal: {run.stderr!r}"
        profile = json.load(open(path(model + ".profile.json")))
        assert profile["model"] == model, profile
        assert sorted(int(k) for k in profile["exec_us_by_rows"]) == [rows_of(model), 2 * rows_of(model)], profile
        assert all(v > 0 for v in profile["exec_us_by_rows"].values()), profile
        assert len(profile["exec_spread"]) == 1001, len(profile["exec_spread"])
        assert profile["exec_spread"] == sorted(profile["exec_spread"]), "spread not non-decreasing"
        # Start time by level: the first start is from the zygote with the prepared artifact (its
        # template starting meanwhile), the next from the template's standby.
        starts = profile["start_us"]
        assert starts["prepared"] > 0 and starts["template_start"] > 0 and starts["standby"] > 0, profile
        assert starts["standby"] < starts["prepared"], profile
        assert profile["memory_kb"]["rss"] > 0, profile


def simulate_two_models():
    trace = write_csv_trace("two.csv", TWO_MODEL_TRACE)
    run = thaw("simulate", "--trace", trace, "--profile", path("fraud.profile.json"), "--profile",
               path("fashion.profile.json"), "--config", config("fraud"), "--config", config("fashion"), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    rows = by_model(report)
    assert rows["fraud"]["invocations"] == 300 and rows["fashion"]["invocations"] == 60, rows
    assert report["total"]["invocations"] == 360, report["total"]
    assert rows["fraud"]["cold_starts"] >= 1 and rows["fashion"]["cold_starts"] >= 1, rows
    # The same run twice gives the same report (deterministic for a seed).
    again = thaw("simulate", "--trace", trace, "--profile", path("fraud.profile.json"), "--profile",
                 path("fashion.profile.json"), "--config", config("fraud"), "--config", config("fashion"), "--json")
    assert again.stdout == run.stdout
    # --map overrides the model column: everything to fraud.
    mapped = thaw("simulate", "--trace", trace, "--profile", path("fraud.profile.json"), "--profile",
                  path("fashion.profile.json"), "--config", config("fraud"), "--config", config("fashion"),
                  "--map", "fashion=fraud", "--json")
    assert mapped.returncode == 0, mapped.stderr
    assert by_model(json.loads(mapped.stdout))["fraud"]["invocations"] == 360


def simulate_fleet_per_function():
    """--per-function names a model per trace function and takes the config of its kind (fraud-0003: fraud);
    --nodes places them on a fleet: every request counted once, per node and in total."""
    arrivals = sorted([(i / 50, f"fraud-{i % 12:04d}") for i in range(400)] +
                      [(0.01 + i / 10, f"fashion-{i % 6:04d}") for i in range(60)])
    trace = write_csv_trace("fleet.csv", arrivals)
    args = ["simulate", "--trace", trace, "--per-function", "--profile", path("fraud.profile.json"), "--profile",
            path("fashion.profile.json"), "--config", config("fraud"), "--config", config("fashion")]
    run = thaw(*args, "--nodes", "3", "--node-memory-mb", "2048", "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    fleet = doc["fleet"]
    assert fleet["nodes"] == 3 and len(fleet["per_node"]) == 3, fleet
    assert sum(n["requests"] for n in fleet["per_node"]) == 460 and doc["total"]["invocations"] == 460, fleet
    rows = by_model(doc)
    assert len(rows) >= 18 and rows["fashion-0005"]["invocations"] == 10, sorted(rows)
    assert fleet["unloads"] > 0, "18 models of 512-1024 MB on 3 x 2048 MB: the router must unload some"
    text = thaw(*args, "--nodes", "3", "--node-memory-mb", "2048")
    assert text.returncode == 0 and "fleet: 460 requests" in text.stdout, text.stdout + text.stderr
    bad = thaw(*args, "--nodes", "0")
    assert bad.returncode == 2 and "--nodes" in bad.stderr, bad.stderr


def simulate_azure_trace():
    # Two functions' per-minute counts; 60x time scale: a minute lasts a second.
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, 1441))
    counts_a = [120, 0, 60] + [0] * 1437
    counts_b = [30, 30, 30] + [0] * 1437
    with open(path("azure.csv"), "w") as f:
        f.write(header + "\n")
        f.write("o1,a1,fnA,http," + ",".join(map(str, counts_a)) + "\n")
        f.write("o2,a2,fnB,timer," + ",".join(map(str, counts_b)) + "\n")
    common = ["simulate", "--azure", path("azure.csv"), "--azure-top", "2", "--time-scale", "60",
              "--profile", path("fraud.profile.json"), "--profile", path("fashion.profile.json"),
              "--config", config("fraud"), "--config", config("fashion")]
    run = thaw(*common, "--map", "fnA=fraud", "--map", "*=fashion", "--json")
    assert run.returncode == 0, run.stderr
    rows = by_model(json.loads(run.stdout))
    assert rows["fraud"]["invocations"] == 180 and rows["fashion"]["invocations"] == 90, rows
    # Two models and no route for the functions: an error naming one.
    unrouted = thaw(*common)
    assert unrouted.returncode == 2 and "'fnA'" in unrouted.stderr, (unrouted.returncode, unrouted.stderr)
    typo = thaw(*common, "--map", "fnZ=fraud", "--map", "*=fashion")
    assert typo.returncode == 2 and "'fnZ'" in typo.stderr, typo.stderr


def plan_writes_a_config_the_server_loads():
    run = thaw("plan", "--poisson", "50", "--duration-s", "60", "--profile", path("fraud.profile.json"),
               "--config", config("fraud"), "--rows", str(rows_of("fraud")), "--slo-p99-ms", "50",
               "--out", path("fraud.plan.json"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == "", f"progress or noise on stderr when not a terminal: {run.stderr!r}"
    assert "Pareto front" in run.stdout and "Cheapest meeting the target" in run.stdout, run.stdout
    repo = path("plan-repo")
    os.makedirs(os.path.join(repo, "fraud"))
    os.symlink(os.path.join(MODELS, "fraud", "model.pt"), os.path.join(repo, "fraud", "model.pt"))
    os.symlink(os.path.join(MODELS, "fraud", "labels.txt"), os.path.join(repo, "fraud", "labels.txt"))
    shutil.copy(path("fraud.plan.json"), os.path.join(repo, "fraud", "config.json"))
    server, base, log = serve(repo, path("plan-usage.jsonl"))
    try:
        body = open(os.path.join(REQUESTS, "fraud.json"), "rb").read()
        request = urllib.request.Request(base + "/v2/models/fraud/infer", data=body,
                                         headers={"Content-Type": "application/json"})
        response = json.loads(urllib.request.urlopen(request, timeout=60).read())
        assert response["model_name"] == "fraud", response
    finally:
        stop(server, log)


def serve(repo, usage_log):
    port = free_port()
    log = open(usage_log + ".server.log", "w")
    server = subprocess.Popen([THAW, "serve", "--repo", repo, "--port", str(port), "--usage-log", usage_log],
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    # Ready (200) once the models' templates have loaded: up to 2 minutes on a loaded machine.
    for _ in range(2400):
        try:
            urllib.request.urlopen(base + "/v2/health/ready", timeout=2)
            return server, base, log
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("server did not start")


def stop(server, log):
    stop_server(server, log)


def replay_two_models_then_profile_from_usage():
    repo = path("replay-repo")
    for model in ["fraud", "fashion"]:
        os.makedirs(os.path.join(repo, model))
        os.symlink(os.path.join(MODELS, model, "model.pt"), os.path.join(repo, model, "model.pt"))
        os.symlink(os.path.join(MODELS, model, "labels.txt"), os.path.join(repo, model, "labels.txt"))
        shutil.copy(config(model), os.path.join(repo, model, "config.json"))
    trace = write_csv_trace("two.csv", TWO_MODEL_TRACE)
    usage = path("replay-usage.jsonl")
    server, base, log = serve(repo, usage)
    try:
        run = thaw("replay", "--trace", trace, "--url", base, "--target", f"fraud={REQUESTS}/fraud.json",
                   "--target", f"fashion={REQUESTS}/fashion.json", "--json")
    finally:
        stop(server, log)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", f"progress or noise on stderr when not a terminal: {run.stderr!r}"
    replay = json.loads(run.stdout)
    assert replay["load"]["ok_2xx"] == 360, replay["load"]
    live = by_model(replay["server"])
    assert live["fraud"]["ok"] == 300 and live["fashion"]["ok"] == 60, live

    # Text: the server's report as the table thaw simulate prints; with --profile and --config the simulation of
    # the same trace beside it (a fresh server: its stats count from its start).
    server, base, log = serve(repo, path("replay-usage-2.jsonl"))
    try:
        text = thaw("replay", "--trace", trace, "--url", base, "--target", f"fraud={REQUESTS}/fraud.json",
                    "--target", f"fashion={REQUESTS}/fashion.json", "--profile", path("fraud.profile.json"),
                    "--config", config("fraud"), "--profile", path("fashion.profile.json"), "--config",
                    config("fashion"), "--rows", str(rows_of("fraud")))
    finally:
        stop(server, log)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "--- latency of 2xx, ms ---" in out and "--- memory held, GB-s ---" in out, out
    assert "simulated (--profile, --config) vs replayed" in out, out
    assert re.search(r"\nfraud +invocations +300 +300 +\+0 ", out), out
    assert re.search(r"\nfashion +invocations +60 +60 +\+0 ", out), out
    assert "1970" not in out and '{"' not in out and "0.000000" not in out, out

    calibrated = path("fraud.calibrated.json")
    run = thaw("profile", "fraud", "--from-usage", usage, "--out", calibrated)
    assert run.returncode == 0, run.stderr
    profile = json.load(open(calibrated))
    assert str(rows_of("fraud")) in profile["exec_us_by_rows"], profile["exec_us_by_rows"]
    assert len(profile["exec_spread"]) == 1001
    # The simulator, fed the live usage, bills about what the server billed
    # for fraud's part of the trace (each execution rounds up to 1 ms).
    fraud_only = write_csv_trace("fraud.csv", [a for a in TWO_MODEL_TRACE if a[1] == "fraud"])
    run = thaw("simulate", "--trace", fraud_only, "--profile", calibrated, "--config", config("fraud"),
               "--rows", str(rows_of("fraud")), "--json")
    assert run.returncode == 0, run.stderr
    simulated = by_model(json.loads(run.stdout))["fraud"]
    assert simulated["invocations"] == 300, simulated
    want = live["fraud"]["usd"]["total"]
    assert abs(simulated["usd"]["total"] - want) <= 0.15 * want, (simulated["usd"], live["fraud"]["usd"])
    # A model with too few warm executions in the log is a clear error.
    missing = thaw("profile", "textenc", "--from-usage", usage, "--out", path("none.json"))
    assert missing.returncode == 2 and "'textenc'" in missing.stderr, missing.stderr


def main():
    if not os.access(THAW, os.X_OK):
        sys.exit("build/thaw is missing: run scripts/build")
    check("thaw profile measures two models: executions by rows, their spread, cold start, memory", profile_models)
    check("thaw simulate runs a two-model CSV trace, per model and in total, deterministically", simulate_two_models)
    check("thaw simulate --per-function --nodes: models by kind placed on a fleet, every request counted once",
          simulate_fleet_per_function)
    check("thaw simulate runs an Azure Functions 2019 file with --map; unrouted functions are errors",
          simulate_azure_trace)
    check("thaw plan writes the cheapest config; thaw serve loads and serves it", plan_writes_a_config_the_server_loads)
    check("thaw replay sends a two-model trace to a live server; thaw profile --from-usage reads its usage log",
          replay_two_models_then_profile_from_usage)
    finish("simulate", TMP)


if __name__ == "__main__":
    main()
