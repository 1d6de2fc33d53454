"""Serving the app for measuring and testing it: `python -m app` on a free 127.0.0.1 port, waited for, stopped,
and the memory and CPU time its process uses (read from /proc). The load test, the soak and the test suite's one
app server all start it this way.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(server: subprocess.Popen, grace: float = 20) -> None:
    """Ask the server to exit; kill it if it has not after `grace` seconds."""
    server.terminate()
    try:
        server.wait(grace)
    except subprocess.TimeoutExpired:
        server.kill()


def add_server_options(p: argparse.ArgumentParser) -> None:
    """The options saying which server `start_app` starts: --weights and --threads, as for python -m app."""
    p.add_argument("--weights", action="append", default=None, help="as for python -m app (default: weights/)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per op in the server (default: 1)")


def start_app(args: argparse.Namespace, *options: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`python -m app` with `args.weights` and `args.threads` (`add_server_options`) and `options`, on a free
    127.0.0.1 port, `env` added to its environment → (the process, its URL) once it serves.

    Its output goes to a temporary file (a pipe nobody reads could fill up and stall it), shown if it does
    not start within five minutes (SystemExit)."""
    port = free_port()
    cmd = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port), "--threads", str(args.threads)]
    cmd += [x for w in args.weights or [] for x in ("--weights", w)] + list(options)
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    if not wait_until_serving(url, server, timeout=300):
        stop_server(server)
        log.seek(0)
        raise SystemExit(f"the app did not start:\n{log.read()[-4000:]}")
    return server, url


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float) -> bool:
    """Poll `url` until it answers (True), or until the server process exits or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return True
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime, fields 14 and 15
