#!/usr/bin/python3
"""End-to-end test of access control in `thaw serve` with real clients.

Starts build/thaw with --auth-tokens and --admin-port on a repository with
the fraud model and checks, with curl, hey and thaw load: health is open;
every other route answers 401 without or with a wrong token and 403 with too
low a scope; admin routes answer only on the admin port and inference only on
the main one; cross-site browser requests (text/plain or form bodies, a
foreign Origin, a rebinding Host) are refused on state-changing routes; hey
with -T application/json and a token, and thaw load with THAW_TOKEN, get 200s;
token values never reach the log; bad token files stop the server at start,
naming file:line; a network address without tokens is warned about.
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import THAW, check, failed, free_port, grpc_stubs, results, stop_server  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")
TMP = tempfile.mkdtemp(prefix="thaw_e2e_auth_")
PORT = free_port()
ADMIN_PORT = free_port()
while ADMIN_PORT == PORT:
    ADMIN_PORT = free_port()
GRPC_PORT = free_port()
while GRPC_PORT in (PORT, ADMIN_PORT):
    GRPC_PORT = free_port()
TOKENS = {
    "admin": "e2e-admin-" + os.urandom(12).hex(),
    "infer": "e2e-infer-" + os.urandom(12).hex(),
    "metrics": "e2e-metrics-" + os.urandom(12).hex(),
}
ALLOWED_ORIGIN = "https://dash.example.com"
FRAUD_REQUEST = os.path.join(EXAMPLES, "requests", "fraud.json")

# Every route: (method, path, class). Health is open; the rest need the
# class's scope (metrics < infer < admin), as in src/server/auth.h.
ROUTES = [
    ("GET", "/v2/health/live", "health"),
    ("GET", "/v2/health/ready", "health"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/v2", "infer"),
    ("GET", "/v2/stats", "infer"),
    ("GET", "/v2/models/fraud", "infer"),
    ("GET", "/v2/models/fraud/versions/1", "infer"),
    ("GET", "/v2/models/fraud/ready", "infer"),
    ("GET", "/v2/models/stats", "infer"),
    ("GET", "/v2/models/fraud/stats", "infer"),
    ("GET", "/v2/models/fraud/usage", "infer"),
    ("GET", "/v2/models/fraud/config", "infer"),
    ("POST", "/v2/models/fraud/infer", "infer"),
    ("POST", "/v2/models/fraud/versions/1/infer", "infer"),
    ("GET", "/v2/models/fraud/status", "admin"),
    ("POST", "/v2/models/fraud/warm", "admin"),
    ("GET", "/v2/models/fraud/settings", "admin"),
    ("PUT", "/v2/models/fraud/settings", "admin"),
    ("POST", "/v2/repository/index", "admin"),
    ("POST", "/v2/repository/models/fraud/unload", "admin"),
    ("POST", "/v2/repository/models/fraud/load", "admin"),  # after unload: fraud is loaded again
]
RANK = {"metrics": 1, "infer": 2, "admin": 3}


def port_for(route_class):
    return ADMIN_PORT if route_class == "admin" else PORT


def body_for(method, path):
    if path.endswith("/infer"):
        return open(FRAUD_REQUEST).read()
    if path.endswith("/settings") and method == "PUT":
        return '{"keep_alive_s": 30}'
    if path.endswith("/index"):
        return "{}"
    return None


def curl(port, method, path, body=None, headers=(), token=None, content_type="application/json"):
    """Returns (status, headers dict with lower-case names, body text). With a
    body, Content-Type is `content_type` unless it is None (then curl's own:
    application/x-www-form-urlencoded)."""
    out, hdr = os.path.join(TMP, "body"), os.path.join(TMP, "headers")
    cmd = ["curl", "-sS", "-X", method, "-o", out, "-D", hdr, "-w", "%{http_code}", "--max-time", "60"]
    for h in headers:
        cmd += ["-H", h]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        src = os.path.join(TMP, "request")
        with open(src, "w") as f:
            f.write(body)
        cmd += ["--data-binary", "@" + src]
        if content_type:
            cmd += ["-H", f"Content-Type: {content_type}"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    status = int(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    response_headers = {}
    with open(hdr) as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                response_headers[k.strip().lower()] = v.strip()
    with open(out) as f:
        return status, response_headers, f.read()


def error_of(body):
    return json.loads(body)["error"]


def health_is_open_on_both_ports():
    for port in (PORT, ADMIN_PORT):
        for path in ("/v2/health/live", "/v2/health/ready"):
            status, _, body = curl(port, "GET", path)
            assert status == 200, f":{port}{path}: HTTP {status} {body}"


def every_protected_route_needs_a_token_with_its_scope():
    for method, path, route_class in ROUTES:
        if route_class == "health":
            continue
        port, body = port_for(route_class), body_for(method, path)
        what = f"{method} {path}"
        status, headers, response = curl(port, method, path, body)
        assert status == 401, f"{what} without a token: HTTP {status} {response}"
        assert headers.get("www-authenticate", "").startswith("Bearer"), f"{what}: {headers}"
        assert "Authorization: Bearer" in error_of(response), response
        status, headers, response = curl(port, method, path, body, token="e2e-wrong-" + os.urandom(12).hex())
        assert status == 401, f"{what} with a wrong token: HTTP {status} {response}"
        assert 'error="invalid_token"' in headers.get("www-authenticate", ""), headers
        for scope, token in TOKENS.items():
            status, _, response = curl(port, method, path, body, token=token)
            if RANK[scope] < RANK[route_class]:
                assert status == 403, f"{what} with scope {scope}: HTTP {status} {response}"
                assert f"scope '{route_class}'" in error_of(response), response
            else:
                assert status not in (401, 403, 404, 415), f"{what} with scope {scope}: HTTP {status} {response}"


def admin_routes_only_on_the_admin_port():
    admin = TOKENS["admin"]
    for method, path, route_class in ROUTES:
        if route_class not in ("infer", "admin"):
            continue
        other = PORT if route_class == "admin" else ADMIN_PORT
        status, _, response = curl(other, method, path, body_for(method, path), token=admin)
        assert status == 404, f"{method} {path} on the other port: HTTP {status} {response}"
        assert ("admin port" if route_class == "admin" else "main port") in error_of(response), response
    for port in (PORT, ADMIN_PORT):
        status, headers, _ = curl(port, "GET", "/metrics", token=TOKENS["metrics"])
        assert status == 200 and headers["content-type"].startswith("text/plain"), f":{port} /metrics: HTTP {status}"


def cross_site_requests_are_refused():
    admin, infer = TOKENS["admin"], TOKENS["infer"]
    state_changing = [(m, p, c) for m, p, c in ROUTES if m != "GET"]
    for method, path, route_class in state_changing:
        port, body = port_for(route_class), body_for(method, path) or ""
        token = admin if route_class == "admin" else infer
        what = f"{method} {path}"
        # Bodies a page can send cross-site without a preflight.
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            status, _, response = curl(port, method, path, body, token=token, content_type=content_type)
            assert status == 415, f"{what} as {content_type}: HTTP {status} {response}"
            assert "Content-Type" in error_of(response), response
        # curl -d without -H: curl's default form type is refused too.
        status, _, response = curl(port, method, path, body, token=token, content_type=None)
        assert status == 415, f"{what} with curl's default Content-Type: HTTP {status} {response}"
        status, _, response = curl(port, method, path, body, token=token, headers=["Origin: https://attacker.example"])
        assert status == 403 and "Origin" in error_of(response), f"{what} from a foreign Origin: {status} {response}"
        status, _, response = curl(port, method, path, body, token=token, headers=["Host: attacker.example"])
        assert status == 403 and "Host" in error_of(response), f"{what} with a rebinding Host: {status} {response}"
    # The model is still loaded and answers a request from the allowed origin.
    status, _, response = curl(PORT, "POST", "/v2/models/fraud/infer", open(FRAUD_REQUEST).read(), token=infer,
                               headers=[f"Origin: {ALLOWED_ORIGIN}"], content_type="application/json; charset=utf-8")
    assert status == 200, f"allowed origin: HTTP {status} {response}"
    # Reads from a foreign origin are not refused (no CORS headers: a page cannot read them).
    status, _, _ = curl(PORT, "GET", "/v2/models/fraud", token=infer, headers=["Origin: https://attacker.example"])
    assert status == 200, status


def status_counts(hey_output):
    return {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", hey_output)}


def hey(extra):
    cmd = ["hey", "-n", "200", "-c", "4", "-m", "POST", *extra, "-D", FRAUD_REQUEST,
           f"http://127.0.0.1:{PORT}/v2/models/fraud/infer"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


def hey_with_json_and_a_token():
    out = hey(["-T", "application/json", "-H", f"Authorization: Bearer {TOKENS['infer']}"])
    assert status_counts(out) == {200: 200}, out
    out = hey(["-T", "application/json"])
    assert status_counts(out) == {401: 200}, out
    # hey's default Content-Type is text/plain: refused as a browser's would be.
    out = hey(["-H", f"Authorization: Bearer {TOKENS['infer']}"])
    assert status_counts(out) == {415: 200}, out


def load_gets(port, extra, status, token):
    """thaw load against `port` (with `extra` flags), THAW_TOKEN set to `token` or unset: every answer `status`."""
    summary = os.path.join(TMP, "load.json")
    cmd = [THAW, "load", "--url", f"http://127.0.0.1:{port}", "--model", "fraud", "--request", FRAUD_REQUEST,
           "--rate", "100", "--duration-s", "1", "--json", summary] + extra
    env = dict(os.environ)
    env.pop("THAW_TOKEN", None)
    if token:
        env["THAW_TOKEN"] = token
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    # thaw load exits 1 when no request succeeded, saying why.
    want_exit = 0 if status.startswith("2") else 1
    assert run.returncode == want_exit, (run.returncode, run.stderr)
    if want_exit:
        assert "no request succeeded" in run.stderr, run.stderr
    result = json.load(open(summary))
    assert result["sent"] > 0 and result["status_counts"] == {status: result["sent"]}, result


def thaw_load_with_thaw_token():
    load_gets(PORT, [], "200", TOKENS["infer"])
    load_gets(PORT, [], "401", None)


def grpc_has_the_rest_access_rules():
    """gRPC on --grpc-port: ModelInfer with the infer token over thaw load --protocol grpc (200s; 401 without);
    with a Python client, health is open, ModelInfer needs a token, and with --admin-port the repository RPCs are
    NOT_FOUND naming the admin port, as the REST main port answers them."""
    load_gets(GRPC_PORT, ["--protocol", "grpc"], "200", TOKENS["infer"])
    load_gets(GRPC_PORT, ["--protocol", "grpc"], "401", None)
    grpc, pb, pb_grpc = grpc_stubs(os.path.join(TMP, "grpc_stubs"))
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}"))
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    try:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="fraud"), timeout=10)
        raise AssertionError("metadata without a token was served")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
    admin = [("authorization", "Bearer " + TOKENS["admin"])]
    try:
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="fraud"), metadata=admin, timeout=10)
        raise AssertionError("a repository RPC was served beside --admin-port")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND and "admin port" in error.details(), error
    assert stub.ModelReady(pb.ModelReadyRequest(name="fraud"), metadata=admin, timeout=10).ready


def start_fails(args, needle, token_text=None):
    """thaw serve with `args` (and a token file holding token_text) exits 2 naming `needle`."""
    extra = []
    if token_text is not None:
        path = os.path.join(TMP, "bad-tokens")
        with open(path, "w") as f:
            f.write(token_text)
        os.chmod(path, 0o600)
        extra = ["--auth-tokens", path]
    run = subprocess.run([THAW, "serve", "--repo", REPO, "--port", "0", "--usage-log", "", *args, *extra],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2, f"exit {run.returncode}: {run.stderr}"
    assert needle in run.stderr, run.stderr
    return run.stderr


def bad_token_files_stop_the_server():
    secret = "bad-file-token-0123456789"
    err = start_fails([], "bad-tokens:2: scope 'root'", f"# comment\n{secret} root\n")
    assert secret not in err, err
    start_fails([], "bad-tokens:1: the token has 5 characters", "short infer\n")
    start_fails([], "bad-tokens: no tokens", "# nothing here\n")
    start_fails(["--auth-tokens", os.path.join(TMP, "missing")], "cannot read token file")


def started_server(args, wait_for):
    """Starts thaw serve with args; returns (process, log text) once `wait_for` appears in its log."""
    log_path = os.path.join(TMP, "side.log")
    proc = subprocess.Popen([THAW, "serve", "--repo", REPO, "--usage-log", "", *args],
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            text = open(log_path).read()
            if wait_for in text or proc.poll() is not None:
                return proc, text
            time.sleep(0.05)
        return proc, open(log_path).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def warnings_at_start():
    _, text = started_server(["--host", "0.0.0.0", "--port", "0"], "server_listening")
    assert "WARNING" in text and "without --auth-tokens" in text and "no_auth_on_network" in text, text
    readable = os.path.join(TMP, "readable-tokens")
    with open(readable, "w") as f:
        f.write(f"{TOKENS['admin']} admin\n")
    os.chmod(readable, 0o644)
    _, text = started_server(["--port", "0", "--auth-tokens", readable], "server_listening")
    assert "mode 0644" in text and "auth=tokens" in text, text
    assert "WARNING" not in text, text  # loopback: no network warning
    _, text = started_server(["--port", "0"], "server_listening")
    assert "WARNING" not in text and "auth=none" in text, text


def no_token_in_the_log():
    text = open(LOG_PATH).read()
    for token in TOKENS.values():
        assert token not in text, "a token value is in the server log"


def make_repository():
    repo = os.path.join(TMP, "repo")
    os.makedirs(repo)
    os.symlink(os.path.join(EXAMPLES, "models", "fraud"), os.path.join(repo, "fraud"))
    return repo


REPO = make_repository()
LOG_PATH = os.path.join(TMP, "server.log")


def main():
    if not os.access(THAW, os.X_OK):
        sys.exit(f"{THAW} not built; run scripts/build")
    tokens = os.path.join(TMP, "tokens")
    with open(tokens, "w") as f:
        f.write("# e2e tokens\n\n")
        for scope, token in TOKENS.items():
            f.write(f"{token} {scope}\n")
    os.chmod(tokens, 0o600)
    log = open(LOG_PATH, "w")
    server = subprocess.Popen([THAW, "serve", "--repo", REPO, "--port", str(PORT), "--admin-port", str(ADMIN_PORT),
                               "--grpc-port", str(GRPC_PORT), "--auth-tokens", tokens, "--allowed-origin", ALLOWED_ORIGIN, "--usage-log", ""],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        # Ready (503 until the models' templates have loaded): up to 2 min on a busy machine.
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if curl(PORT, "GET", "/v2/health/ready")[0] == 200:
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.1)
        check("health: open on both ports without a token", health_is_open_on_both_ports)
        check("every protected route: 401 without or with a wrong token, 403 below its scope, served with it",
              every_protected_route_needs_a_token_with_its_scope)
        check("admin routes only on --admin-port, inference only on --port (404 elsewhere)",
              admin_routes_only_on_the_admin_port)
        check("cross-site requests: text/plain, form, foreign Origin, rebinding Host -> 415/403",
              cross_site_requests_are_refused)
        check("hey -T application/json with a token: 200s (401 without, 415 with hey's text/plain)",
              hey_with_json_and_a_token)
        check("thaw load with THAW_TOKEN: 200s (401 without)", thaw_load_with_thaw_token)
        check("gRPC: the REST routes' tokens; repository RPCs refused beside --admin-port, naming it",
              grpc_has_the_rest_access_rules)
        check("bad token files stop thaw serve naming file:line, never the token", bad_token_files_stop_the_server)
        check("warnings: network address without tokens, token file readable by others", warnings_at_start)
    finally:
        stop_server(server, log)
    check("no token value in the server log", no_token_in_the_log)
    print(f"\n{len(results) - len(failed())} passed, {len(failed())} failed")
    sys.exit(1 if failed() else 0)


if __name__ == "__main__":
    main()
