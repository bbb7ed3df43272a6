#!/usr/bin/python3
"""Chaos test of `thaw serve` (bounded in time).

Under steady load on two models (fraud and fashion, four client threads),
a loop of faults for CHAOS_S seconds: settings changes (PUT config) in the
middle of cold starts, SIGKILL and SIGSTOP of random instances and
templates, unload and load, a model that loops in `forward` while it starts,
and a model that allocates past its `memory_mb`. Afterwards:
  - every request got an HTTP answer, and only 200/429/503/504/507;
  - neither loaded model stayed unavailable (no 200 between two answers)
    longer than its start timeout plus its request timeout and slack;
  - both models serve again, and the server's worker processes and memory
    return to their baseline once the autoscaler has calmed and keep-alive
    has retired the extra instances.
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import THAW, check, failed, free_port, results, stop_server  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")
TMP = tempfile.mkdtemp(prefix="thaw_chaos_")
PORT = free_port()
CHAOS_S = float(os.environ.get("THAW_CHAOS_S", "45"))
START_TIMEOUT_MS = 4000
TIMEOUT_MS = 3000
KEEP_ALIVE_S = 2
# A panic holds instances until a stable window passes without one
# (Knative's rule); short windows let the processes return to baseline soon.
STABLE_WINDOW_S = 6
PANIC_WINDOW_S = 2
ALLOWED = {200, 429, 503, 504, 507}
SEED = int(os.environ.get("THAW_CHAOS_SEED", "12"))

# Test models (src/backend/testdata, made by make_test_models.py): `spin`
# is loop_model.pt (forward never returns, so its warm-up never ends);
# `hog` is alloc_model.pt (allocates and fills as many MiB as its input).
TESTDATA = os.path.join(ROOT, "src", "backend", "testdata")
HOG_MIB = 2400


def request(method, path, body=None, timeout=60):
    """One HTTP exchange on a fresh connection: (status, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data
    finally:
        conn.close()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def make_repository():
    repo = os.path.join(TMP, "repo")
    os.makedirs(repo)
    for model in ("fraud", "fashion"):
        os.makedirs(os.path.join(repo, model))
        shutil.copy(os.path.join(EXAMPLES, "models", model, "model.pt"), os.path.join(repo, model))
        shutil.copy(os.path.join(EXAMPLES, "models", model, "labels.txt"), os.path.join(repo, model))
        config = read_json(os.path.join(EXAMPLES, "models", model, "config.json"))
        config.update({"keep_alive_s": KEEP_ALIVE_S, "timeout_ms": TIMEOUT_MS, "start_timeout_ms": START_TIMEOUT_MS,
                       "max_concurrency": 2, "stable_window_s": STABLE_WINDOW_S, "panic_window_s": PANIC_WINDOW_S})
        with open(os.path.join(repo, model, "config.json"), "w") as f:
            json.dump(config, f)
    for model, file_name, tensor in (("spin", "loop_model.pt", ("x", "y", 4)), ("hog", "alloc_model.pt", ("mib", "same", 1))):
        os.makedirs(os.path.join(repo, model))
        shutil.copy(os.path.join(TESTDATA, file_name), os.path.join(repo, model, "model.pt"))
        name_in, name_out, width = tensor
        with open(os.path.join(repo, model, "config.json"), "w") as f:
            json.dump({"backend": "torchscript", "model_file": "model.pt",
                       "inputs": [{"name": name_in, "datatype": "FP32", "shape": [-1, width]}],
                       "outputs": [{"name": name_out, "datatype": "FP32", "shape": [-1, width]}],
                       "memory_mb": 256, "max_concurrency": 1, "keep_alive_s": KEEP_ALIVE_S,
                       # The same short autoscaler windows as fraud and fashion: a panic
                       # (hog requests queued behind instances dying at the memory limit)
                       # holds its instance for the stable window after it.
                       "stable_window_s": STABLE_WINDOW_S, "panic_window_s": PANIC_WINDOW_S,
                       # Called only during the chaos: their templates (a cache) go soon after, so the
                       # processes return to the baseline, where only fraud and fashion are hot.
                       "template_keep_alive_s": KEEP_ALIVE_S,
                       "timeout_ms": TIMEOUT_MS, "start_timeout_ms": START_TIMEOUT_MS}, f)
    return repo


class Load:
    """Client threads sending a model's example request back to back; every answer is recorded."""

    def __init__(self, models, threads_per_model=2):
        self.stop = threading.Event()
        self.answers = {m: [] for m in models}  # (time, status)
        self.errors = []                          # (model, time, exception text)
        self.threads = [threading.Thread(target=self.run, args=(m,), daemon=True)
                        for m in models for _ in range(threads_per_model)]

    def run(self, model):
        body = json.dumps(read_json(os.path.join(EXAMPLES, "requests", model + ".json")))
        while not self.stop.is_set():
            try:
                status, _ = request("POST", f"/v2/models/{model}/infer", body, timeout=TIMEOUT_MS / 1000 + 30)
                self.answers[model].append((time.monotonic(), status))
                if status != 200:
                    time.sleep(0.02)  # don't spin on refusals
            except Exception as e:  # a request without an HTTP answer is a failure of the test
                self.errors.append((model, time.monotonic(), repr(e)))
                time.sleep(0.05)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def descendants(pid):
    """Pids of every live process below `pid` (workers, templates and their children)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def server_roles():
    """pid -> what the server's /status says the process is (template or instance), for failure reports."""
    roles = {}
    for model in ("fraud", "fashion", "spin", "hog"):
        try:
            status, doc = request("GET", f"/v2/models/{model}/status?memory=false", timeout=10)
        except OSError:
            continue
        if status != 200:
            continue
        if doc.get("template"):
            roles[doc["template"]["pid"]] = f"{model} template (ready={doc['template']['ready']})"
        for i in doc.get("instances", []):
            roles[i["pid"]] = f"{model} instance {i['id']} {i['state']}"
    return roles


def describe(pid, roles):
    """'pid ppid=.. state role cmdline tail' of a process, for failure reports."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline") as f:
            cmdline = f.read().replace("\0", " ").strip()
        fields = stat[stat.rindex(")") + 2:].split()
        role = roles.get(pid, "not in /status (a standby, or unknown)")
        return f"{pid} ppid={fields[1]} {fields[0]} [{role}] {cmdline[-60:]}"
    except OSError:
        return f"{pid} gone"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker_pids(model):
    status, doc = request("GET", f"/v2/models/{model}/status")
    if status != 200:
        return [], None
    instances = [i["pid"] for i in doc.get("instances", []) if i.get("pid", 0) > 0]
    template = (doc.get("template") or {}).get("pid")
    return instances, template


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except OSError:
        return False


def longest_outage(answers, start, end):
    """Longest time from a non-200 answer to the next 200 (or `end`) within [start, end]."""
    worst, down_since = 0.0, None
    for t, status in sorted(answers):
        if t < start or t > end:
            continue
        if status == 200:
            if down_since is not None:
                worst = max(worst, t - down_since)
            down_since = None
        elif down_since is None:
            down_since = t
    if down_since is not None:
        worst = max(worst, end - down_since)
    return worst


def main():
    if not os.access(THAW, os.X_OK):
        sys.exit(f"{THAW} not built; run scripts/build")
    rng = random.Random(SEED)
    repo = make_repository()
    log = open(os.path.join(TMP, "server.log"), "w")
    server = subprocess.Popen([THAW, "serve", "--repo", repo, "--port", str(PORT), "--usage-log",
                               os.path.join(TMP, "usage.jsonl")],
                              stdout=log, stderr=subprocess.STDOUT)
    actions = []  # what the chaos loop did, for the failure report
    unloaded = {}  # model -> (unloaded at, loaded again at)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if request("GET", "/v2/health/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        fraud = json.dumps(read_json(os.path.join(EXAMPLES, "requests", "fraud.json")))
        fashion = json.dumps(read_json(os.path.join(EXAMPLES, "requests", "fashion.json")))
        for model, body in (("fraud", fraud), ("fashion", fashion)):
            # Two answered calls: a template starts at a model's second call in a row.
            answered = 0
            for _ in range(100):
                if request("POST", f"/v2/models/{model}/infer", body)[0] == 200:
                    answered += 1
                    if answered == 2:
                        break
                time.sleep(0.1)
        for model in ("fraud", "fashion"):  # hot: their templates are part of the baseline
            for _ in range(300):
                status, doc = request("GET", f"/v2/models/{model}/status?memory=false")
                if status == 200 and doc.get("template_state") == "ready":
                    break
                time.sleep(0.1)
        time.sleep(KEEP_ALIVE_S + 2)  # instances retire: templates (and standbys) remain
        baseline_procs = len(descendants(server.pid))
        baseline_rss_kb = rss_kb(server.pid)
        print(f"baseline: {baseline_procs} worker processes, server RSS {baseline_rss_kb // 1024} MB", flush=True)
        roles = server_roles()
        baseline_described = "; ".join(describe(pid, roles) for pid in descendants(server.pid))

        side_bodies = {
            "spin": json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}),
            "hog": json.dumps({"inputs": [{"name": "mib", "datatype": "FP32", "shape": [1, 1], "data": [HOG_MIB]}]}),
        }
        side_answers = {"spin": [], "hog": []}

        def side_request(model):
            started = time.monotonic()
            try:
                status, body = request("POST", f"/v2/models/{model}/infer", side_bodies[model], timeout=60)
            except Exception as e:
                status, body = None, repr(e)
            side_answers[model].append((status, time.monotonic() - started, str(body)[:200]))

        side_threads = []
        with Load(["fraud", "fashion"]) as load:
            chaos_start = time.monotonic()
            settings = 0
            while time.monotonic() - chaos_start < CHAOS_S:
                model = rng.choice(["fraud", "fashion"])
                action = rng.choice(["put_twice", "kill_instance", "kill_template", "stop_instance",
                                     "stop_template", "reload", "spin", "hog"])
                instances, template = worker_pids(model)
                if action == "put_twice":
                    for _ in range(2):  # two settings changes 0.3 s apart, mid cold start
                        settings += 1
                        request("PUT", f"/v2/models/{model}/settings",
                                json.dumps({"threads": 1 + settings % 2, "max_concurrency": 1 + settings % 2}))
                        time.sleep(0.3)
                elif action in ("kill_instance", "stop_instance") and instances:
                    signal_pid(rng.choice(instances), signal.SIGKILL if action == "kill_instance" else signal.SIGSTOP)
                elif action in ("kill_template", "stop_template") and template:
                    signal_pid(template, signal.SIGKILL if action == "kill_template" else signal.SIGSTOP)
                elif action == "reload":
                    unloaded_at = time.monotonic()
                    request("POST", f"/v2/repository/models/{model}/unload", "{}")
                    time.sleep(0.2)
                    request("POST", f"/v2/repository/models/{model}/load", "{}")
                    unloaded.setdefault(model, []).append((unloaded_at, time.monotonic()))
                elif action in ("spin", "hog"):
                    t = threading.Thread(target=side_request, args=(action,), daemon=True)
                    t.start()
                    side_threads.append(t)
                actions.append((round(time.monotonic() - chaos_start, 2), action, model))
                time.sleep(rng.uniform(0.3, 1.2))
            # Let the models recover under load: one start timeout, one request timeout.
            time.sleep((START_TIMEOUT_MS + TIMEOUT_MS) / 1000 + 2)
            load_end = time.monotonic()
        for t in side_threads:
            t.join(timeout=90)
        print("chaos actions:", actions, flush=True)

        def every_request_answered():
            assert not load.errors, f"{len(load.errors)} requests got no HTTP answer, e.g. {load.errors[:3]}"
            for model, answers in load.answers.items():
                def unloaded_then(t):
                    return any(a <= t <= b + 0.5 for a, b in unloaded.get(model, []))
                # A request that arrives while the chaos loop has the model unloaded gets 404.
                bad = sorted({s for t, s in answers if s not in ALLOWED and not (s == 404 and unloaded_then(t))})
                assert not bad, f"{model}: statuses outside {sorted(ALLOWED)}: {bad}"
                counts = {s: sum(1 for _, x in answers if x == s) for s in sorted({x for _, x in answers})}
                print(f"  {model}: {len(answers)} answers {counts}", flush=True)
                assert counts.get(200, 0) > 0, f"{model}: no request succeeded"

        def no_long_outage():
            limit = (START_TIMEOUT_MS + TIMEOUT_MS) / 1000 + 5
            for model, answers in load.answers.items():
                outage = longest_outage(answers, chaos_start, load_end)
                print(f"  {model}: longest outage {outage:.2f} s (limit {limit:.1f} s)", flush=True)
                assert outage <= limit, f"{model} was unavailable for {outage:.1f} s (limit {limit:.1f} s)"

        def models_serve_after():
            for model, body in (("fraud", fraud), ("fashion", fashion)):
                status, doc = request("POST", f"/v2/models/{model}/infer", body)
                assert status == 200, f"{model}: HTTP {status}: {doc}"
                status, doc = request("GET", f"/v2/models/{model}/ready")
                assert status == 200, f"{model} ready: HTTP {status}: {doc}"

        def looping_model_times_out():
            answers = side_answers["spin"] or [None]
            for answer in answers:
                if answer is None:  # the dice never chose it: ask once now
                    side_request("spin")
                    answer = side_answers["spin"][-1]
                status, seconds, body = answer
                assert status in (503, 504), f"spin: HTTP {status} after {seconds:.1f} s: {body}"
                assert seconds <= (START_TIMEOUT_MS + TIMEOUT_MS) / 1000 + 5, f"spin answered after {seconds:.1f} s"
            status, doc = request("GET", "/v2/models/spin/ready")
            assert status == 400, f"a model that cannot start must not be ready (4xx): HTTP {status} {doc}"

        def memory_hog_is_contained():
            if not side_answers["hog"]:
                side_request("hog")
            # A hog request that ran gets the memory limit's error; one that queued
            # behind others (max_concurrency 1, each instance dying at its limit after
            # a second or more) may reach its deadline first: 504 naming it, no sooner.
            for status, seconds, body in side_answers["hog"]:
                if status == 504:
                    assert "deadline" in body and seconds >= TIMEOUT_MS / 1000, f"hog: 504 after {seconds:.1f} s: {body}"
                    continue
                assert status in (503, 507), f"hog: HTTP {status}: {body}"
                assert "memory" in body.lower(), f"hog: the error does not name the memory limit: {body}"
            assert any(status in (503, 507) for status, _, _ in side_answers["hog"]), side_answers["hog"]
            assert rss_kb(server.pid) < baseline_rss_kb + 200 * 1024, "the server's memory grew by over 200 MB"

        def back_to_baseline():
            deadline = time.monotonic() + STABLE_WINDOW_S + KEEP_ALIVE_S + 30
            while True:
                procs = len(descendants(server.pid))
                if procs <= baseline_procs or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            rss = rss_kb(server.pid)
            print(f"  after: {procs} worker processes (baseline {baseline_procs}), "
                  f"server RSS {rss // 1024} MB (baseline {baseline_rss_kb // 1024} MB)", flush=True)
            if procs > baseline_procs:
                roles = server_roles()
                raise AssertionError(f"{procs} worker processes, baseline {baseline_procs} ({baseline_described}): " +
                                     "; ".join(describe(pid, roles) for pid in descendants(server.pid)))
            assert rss < baseline_rss_kb + 100 * 1024, "server RSS grew by over 100 MB"

        check("chaos: every request got an answer, 200/429/503/504/507 only", every_request_answered)
        check("chaos: no model unavailable longer than its start timeout", no_long_outage)
        check("chaos: fraud and fashion serve and are ready afterwards", models_serve_after)
        check("chaos: a model looping in forward at start is timed out (503) and not ready", looping_model_times_out)
        check("chaos: a model allocating past memory_mb gets an error naming the limit; server untouched",
              memory_hog_is_contained)
        check("chaos: worker processes and server memory return to baseline", back_to_baseline)
    finally:
        stop_server(server, log, timeout_s=30)
    passed = sum(1 for _, error in results if error is None)
    print(f"{passed} passed, {len(failed())} failed")
    if failed():
        print(f"server log: {os.path.join(TMP, 'server.log')}")
        sys.exit(1)
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
