"""Real daphne processes serving the project against the test database, for tests that need
a real server: several processes, a process killed mid-run, a browser.

Use inside a test marked ``django_db(transaction=True)`` (the processes see only committed
data). The processes share the test database and, when REDIS_URL is set, Redis under the
test's key prefix.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
_static_collected = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database this test run created (test_<name>), for a subprocess."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    raise RuntimeError(f"no live-server support for {connection.vendor}")


def collect_static() -> None:
    """The served pages need collected static files (manifest storage); once per run."""
    global _static_collected
    if not _static_collected:
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "DATABASE_URL": test_database_url()},
        )
        _static_collected = True


class DaphneServer:
    """One daphne process on a free port; a context manager."""

    def __init__(
        self, *, env: dict[str, str] | None = None, port: int | None = None, app: str = "agentsite.asgi:application"
    ):
        self.port = port or free_port()
        self.app = app
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "KEY_PREFIX": settings.KEY_PREFIX,
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "OFFLINE_MODEL_WORD_DELAY": "0",
            "ARTIFACT_CHUNK_DELAY": "0",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        if settings.REDIS_URL and "REDIS_URL" not in (env or {}):
            self.env["REDIS_URL"] = settings.REDIS_URL
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(settings.VAR_DIR) / f"daphne-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> DaphneServer:
        collect_static()
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), self.app],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited at start:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not answer /healthz in 30 s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash; nothing of it runs after."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the process, from /proc (Linux)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def __enter__(self) -> DaphneServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def session_cookie(user: Any) -> str:
    """A logged-in session for ``user``, as the value of the ``sessionid`` cookie."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value
