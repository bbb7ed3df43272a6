"""Helpers shared by the benchmark scripts in bench/: the process tree of a
server (CPU time, descendants), free ports, text and Markdown tables, and a
description of the machine a run was made on."""
import datetime
import os
import socket
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def proc_table():
    """{pid: (ppid, cpu ticks of user + system time)} for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        table[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def descendants(root, table=None):
    table = table if table is not None else proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu_seconds(root):
    """CPU seconds used so far by `root` and every live descendant (server, templates, instances)."""
    table = proc_table()
    pids = [root] + descendants(root, table)
    return sum(table[p][1] for p in pids if p in table) / CLOCK_TICKS_PER_S


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def shown_path(path):
    """`path` as a script prints it: relative to the checkout when inside it, else absolute (never ../../tmp/...)."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text_table(header, body):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    numeric = [all(c == "-" or c.replace(".", "", 1).lstrip("-").rstrip("x×").isdigit() for c in col)
               for col in zip(*body)] if body else [False] * len(header)

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body])


def md_table(header, body):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(out)


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        commit = "unknown"
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": f"{mem_gb:.0f} GiB", "kernel": os.uname().release,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit}
