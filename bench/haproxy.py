"""HAProxy in front of several daphne processes, round-robin, for the load benchmark.

Debian's ``haproxy`` (``apt-get install haproxy``; ``HAPROXY`` names another binary). The
configuration is written to a temporary directory and checked (``haproxy -c``); HAProxy
runs in the foreground (``-db``) as a child of the benchmark and is stopped by its pid.
Websockets pass through ``mode http`` (the upgrade becomes a tunnel, ``timeout tunnel``);
each socket is one connection, so round-robin spreads the sessions evenly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from bench.servers import BenchError
from tests.live import DaphneServer, free_port

CONFIG = """\
global
    maxconn 4096
    nbthread 1

defaults
    mode http
    maxconn 4096
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout tunnel 300s

frontend bench
    bind 127.0.0.1:{port}
    default_backend daphne

backend daphne
    balance roundrobin
{servers}
"""


def binary() -> str | None:
    named = os.environ.get("HAPROXY")
    if named:
        return named if Path(named).is_file() else None
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None)


def missing() -> str | None:
    """Why HAProxy cannot be used here (None: it can)."""
    if binary() is None:
        return "haproxy is not installed (apt-get install haproxy, or set HAPROXY to its path)"
    return None


@contextlib.contextmanager
def haproxy(servers: list[DaphneServer]) -> Iterator[str]:
    """HAProxy balancing over ``servers`` for the block; yields its ``http://host:port``."""
    executable = binary()
    if executable is None:
        raise BenchError(missing())
    port = free_port()
    lines = "\n".join(f"    server daphne{i} 127.0.0.1:{server.port}" for i, server in enumerate(servers, 1))
    with tempfile.TemporaryDirectory(prefix="bench-haproxy-") as directory:
        config = Path(directory) / "haproxy.cfg"
        config.write_text(CONFIG.format(port=port, servers=lines))
        check = subprocess.run([executable, "-c", "-q", "-f", str(config)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise BenchError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
        log_path = Path(directory) / "haproxy.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([executable, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_serving(url, process, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"haproxy exited at start:\n{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, socket.timeout):
            time.sleep(0.1)
    raise BenchError(f"haproxy at {url} did not pass /healthz through in 15 s:\n{log_path.read_text(errors='replace')[-2000:]}")
