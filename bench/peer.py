"""Chainlit measured in the same run, when ``PEER_VENV`` is a venv with chainlit 2.12.0.

The peer benchmark (``PEER_BENCH``, default ``/work/shared/peer-bench``; its README says how
to make the venv) is not part of this repository: its ``app.py`` is copied into a
temporary directory (Chainlit writes its config files next to the app) and served there,
and its ``chainlit_load.py`` is run once per N, between agentsite's runs at the same N.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from bench.servers import BenchError
from tests.live import free_port

PEER_BENCH = Path(os.environ.get("PEER_BENCH", "/work/shared/peer-bench"))
LOAD_TIMEOUT = 600
# Chainlit runs with its defaults: none of our settings may reach it (with DATABASE_URL
# set, Chainlit turns on its own data layer and writes to that database).
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def _environment(**extra: str) -> dict[str, str]:
    return {**{name: os.environ[name] for name in PASSED_ON if name in os.environ}, **extra}


def _venv() -> Path:
    return Path(os.environ.get("PEER_VENV", ""))


def missing() -> str | None:
    """Why Chainlit cannot be measured here (None: it can)."""
    if not os.environ.get("PEER_VENV"):
        return "PEER_VENV is not set"
    if not (_venv() / "bin" / "chainlit").is_file():
        return f"no chainlit in PEER_VENV ({_venv()})"
    if not (PEER_BENCH / "chainlit_load.py").is_file():
        return f"no chainlit_load.py in PEER_BENCH ({PEER_BENCH})"
    return None


@contextlib.contextmanager
def chainlit(word_delay: float) -> Iterator[int]:
    """A Chainlit process serving the peer app for the block; yields its port."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-chainlit-") as directory:
        shutil.copy(PEER_BENCH / "app.py", directory)
        log_path = Path(directory) / "chainlit.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(_venv() / "bin" / "chainlit"), "run", "app.py", "--headless", "--host", "127.0.0.1", "--port", str(port)],
                cwd=directory,
                env=_environment(FAKE_WORD_DELAY=str(word_delay)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_serving(port, process, log_path)
            yield port
        finally:
            _stop(process)


def first_tokens(port: int, sessions: int) -> dict[str, Any]:
    """chainlit_load.py's figure for one N, as its JSON line says it (``median_ms``,
    ``p99_ms``, ``ok``, ``failures``, ``failure_kinds``); it warms up with 5 sessions first."""
    try:
        done = subprocess.run(
            [str(_venv() / "bin" / "python"), str(PEER_BENCH / "chainlit_load.py"), "latency", str(port), str(sessions)],
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=LOAD_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"chainlit_load.py did not finish in {LOAD_TIMEOUT} s at {sessions} sessions") from None
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            figure = json.loads(line)
            if figure.get("figure") == "first_token":
                return figure
    raise BenchError(f"chainlit_load.py gave no figure (exit {done.returncode}):\n{done.stderr[-2000:]}")


def _wait_until_serving(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"chainlit exited at start:\n{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    _stop(process)
    raise BenchError(f"chainlit did not answer on port {port} in 60 s:\n{log_path.read_text(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    # uvicorn under chainlit may hang in its graceful shutdown; a second SIGTERM ends it.
    for _ in range(2):
        process.terminate()
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait(timeout=10)
