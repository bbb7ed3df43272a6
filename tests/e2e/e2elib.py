"""Helpers shared by the end-to-end tests: named checks that report and go on,
and a free local port."""
import signal
import socket
import subprocess
import traceback

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
