"""End-to-end test of edge offload (`thaw serve --upstream URL`): an edge server and a central one in separate network
namespaces joined by a veth pair, the edge reaching the central server through a relay that adds 20 ms each way
(tests/e2e/delay_relay.py; this kernel has no `tc netem`). Checks, with hey as the client:
- a model not deployed at the edge is answered by the central server (served_by upstream, one WAN round trip);
- the edge's own model: served_by local, p50 within 1 ms of a plain local server's (same model, no --upstream);
- a burst over the edge's capacity (max_concurrency 1, max_queue 4) completes with no 429/5xx, part of it served
  upstream (the edge's /metrics), where the plain server refuses part of the same burst with 429.

Needs root (ip netns) and hey. Run: /usr/bin/python3 tests/e2e/test_edge.py"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import EXAMPLE_MODELS, EXAMPLE_REQUESTS, THAW, check, finish  # noqa: E402

TMP = tempfile.mkdtemp(prefix="thaw_e2e_edge_")
PID = os.getpid() % 100000
EDGE_NS, CENTRAL_NS = f"thaw-e{PID}", f"thaw-c{PID}"
SUBNET = f"10.{77 + PID % 100}.{PID % 250}"
EDGE_IP, CENTRAL_IP = f"{SUBNET}.1", f"{SUBNET}.2"
CENTRAL_PORT, RELAY_PORT, EDGE_PORT, PLAIN_PORT = 8000, 9000, 8100, 8200
DELAY_MS = 20
processes = []
state = {}


def sh(*args, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def start(name, *args, ns):
    log = open(os.path.join(TMP, name + ".log"), "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=log, stderr=subprocess.STDOUT, cwd=TMP)
    processes.append((p, log))
    return p


def wait_ready(ns, url, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        if sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url, ns=ns).stdout == "200":
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready: " + open(os.path.join(TMP, what + ".log")).read()[-2000:])


def setup():
    for ns in (EDGE_NS, CENTRAL_NS):
        r = sh("ip", "netns", "add", ns)
        assert r.returncode == 0, r.stderr
        sh("ip", "link", "set", "lo", "up", ns=ns)
    r = sh("ip", "link", "add", f"te{PID}", "type", "veth", "peer", "name", f"tc{PID}")
    assert r.returncode == 0, r.stderr
    for dev, ns, ip in ((f"te{PID}", EDGE_NS, EDGE_IP), (f"tc{PID}", CENTRAL_NS, CENTRAL_IP)):
        sh("ip", "link", "set", dev, "netns", ns)
        sh("ip", "addr", "add", ip + "/24", "dev", dev, ns=ns)
        sh("ip", "link", "set", dev, "up", ns=ns)
    # The edge's repository: fraud with a small local capacity and a 50 ms SLO.
    repo = os.path.join(TMP, "edge-repo")
    shutil.copytree(os.path.join(EXAMPLE_MODELS, "fraud"), os.path.join(repo, "fraud"))
    path = os.path.join(repo, "fraud", "config.json")
    config = json.load(open(path))
    config.update(max_concurrency=1, max_queue=4, slo_p99_ms=50, keep_alive_s=600, min_instances=1)
    json.dump(config, open(path, "w"), indent=2)
    start("central", THAW, "serve", "--repo", EXAMPLE_MODELS, "--models", "fraud,fashion", "--host", CENTRAL_IP,
          "--port", str(CENTRAL_PORT), "--usage-log", "", ns=CENTRAL_NS)
    start("relay", "/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "delay_relay.py"),
          "127.0.0.1", str(RELAY_PORT), CENTRAL_IP, str(CENTRAL_PORT), str(DELAY_MS), ns=EDGE_NS)
    start("edge", THAW, "serve", "--repo", repo, "--port", str(EDGE_PORT), "--usage-log", "",
          "--upstream", f"http://127.0.0.1:{RELAY_PORT}", ns=EDGE_NS)
    start("plain", THAW, "serve", "--repo", repo, "--port", str(PLAIN_PORT), "--usage-log", "", ns=EDGE_NS)
    wait_ready(CENTRAL_NS, f"http://{CENTRAL_IP}:{CENTRAL_PORT}/v2/health/ready", "central")
    wait_ready(EDGE_NS, f"http://127.0.0.1:{EDGE_PORT}/v2/health/ready", "edge")
    wait_ready(EDGE_NS, f"http://127.0.0.1:{PLAIN_PORT}/v2/health/ready", "plain")
    state["up"] = True


def infer(port, model):
    body = os.path.join(EXAMPLE_REQUESTS, model + ".json")
    r = sh("curl", "-s", "-w", "\n%{http_code} %{time_total}", "-H", "Content-Type: application/json",
           "--data-binary", "@" + body, f"http://127.0.0.1:{port}/v2/models/{model}/infer", ns=EDGE_NS)
    text, _, tail = r.stdout.rpartition("\n")
    code, seconds = tail.split()
    return int(code), json.loads(text), float(seconds)


def not_deployed_goes_upstream():
    for _ in range(3):
        code, body, seconds = infer(EDGE_PORT, "fashion")
    assert code == 200, body
    assert body["parameters"]["served_by"] == "upstream", body["parameters"]
    assert seconds >= 2 * DELAY_MS / 1000, f"{seconds * 1000:.1f} ms: faster than the relay's round trip"
    print(f"  fashion through the edge: {seconds * 1000:.1f} ms (relay round trip {2 * DELAY_MS} ms)", flush=True)


def hey(port, n, c):
    r = sh("hey", "-n", str(n), "-c", str(c), "-m", "POST", "-T", "application/json", "-D",
           os.path.join(EXAMPLE_REQUESTS, "fraud.json"), f"http://127.0.0.1:{port}/v2/models/fraud/infer", ns=EDGE_NS)
    assert r.returncode == 0, r.stderr
    codes = {int(k): int(v) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", r.stdout)}
    p50 = re.search(r"50%+ in ([\d.]+) secs", r.stdout)
    return codes, float(p50.group(1)) * 1000 if p50 else None, r.stdout


def local_p50_matches_plain():
    code, body, _ = infer(EDGE_PORT, "fraud")
    assert code == 200 and body["parameters"]["served_by"] == "local", body.get("parameters")
    hey(EDGE_PORT, 200, 1)
    hey(PLAIN_PORT, 200, 1)
    edge, plain = [], []
    for _ in range(3):  # interleaved rounds; medians of their p50s
        codes, p50, out = hey(EDGE_PORT, 500, 1)
        assert codes == {200: 500}, out
        edge.append(p50)
        codes, p50, out = hey(PLAIN_PORT, 500, 1)
        assert codes == {200: 500}, out
        plain.append(p50)
    e, p = sorted(edge)[1], sorted(plain)[1]
    print(f"  fraud p50 (hey, 500 sequential requests, median of 3 rounds): edge {e:.2f} ms, plain {p:.2f} ms "
          f"(rounds edge {edge}, plain {plain})", flush=True)
    assert abs(e - p) <= 1.0, f"edge p50 {e:.2f} ms vs plain {p:.2f} ms: more than 1 ms apart"


def upstream_count():
    r = sh("curl", "-s", f"http://127.0.0.1:{EDGE_PORT}/metrics", ns=EDGE_NS)
    return sum(int(v) for v in re.findall(r'thaw_upstream_requests_total\{model="fraud",[^}]*\} (\d+)', r.stdout))


def burst_overflows_upstream():
    n = 576  # hey sends a multiple of its concurrency
    codes, _, out = hey(PLAIN_PORT, n, 48)
    refused = sum(v for k, v in codes.items() if k != 200)
    assert refused > 0, f"the plain server refused none of the burst: it is not over local capacity\n{out}"
    before = upstream_count()
    codes, _, out = hey(EDGE_PORT, n, 48)
    assert codes == {200: n}, f"edge answered {codes}\n{out}"
    sent = upstream_count() - before
    assert 0 < sent < n, f"{sent} of {n} went upstream"
    print(f"  burst of {n} at 48 concurrent: the plain server refused {refused}; the edge answered all 200, "
          f"{sent} served upstream, {n - sent} locally", flush=True)


def teardown():
    for p, log in processes:
        p.terminate()
    for p, log in processes:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
    for ns in (EDGE_NS, CENTRAL_NS):
        sh("ip", "netns", "delete", ns)


def main():
    try:
        check(f"two network namespaces over a veth pair, {DELAY_MS} ms each way through a relay; central, edge "
              "(--upstream) and plain servers ready", setup)
        if state.get("up"):
            check("a model not deployed at the edge: answered upstream, served_by upstream", not_deployed_goes_upstream)
            check("the edge's own model: served_by local, p50 within 1 ms of a plain local server's",
                  local_p50_matches_plain)
            check("a burst over local capacity: no 429/5xx at the edge, part served upstream (plain refuses part)",
                  burst_overflows_upstream)
    finally:
        teardown()
    finish("edge", TMP)


if __name__ == "__main__":
    main()
