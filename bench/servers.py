"""The daphne processes a benchmark starts, and what it reads of them from outside.

Every process is started through ``daphne()``, which stops it when the block ends, even
on a failure, and then reads its whole log for the lines that betray trouble under load
(``LOG_PROBLEMS``): ``Logs`` keeps the tally that the benchmark prints at its end. A log
is read when its process stops, because a later process may get the same port, and so
the same log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterator

from django.conf import settings
from django.db import connection

from tests.live import DaphneServer

# What the issue asks to look for, and what says that something went wrong at all.
LOG_PROBLEMS = ("Redis unavailable", "database is locked")
LOG_ERRORS = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark cannot go on (a server, a socket or a reply misbehaved): said why."""


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, all its threads included.

    Fields 14 and 15 of ``/proc/<pid>/stat`` (Linux), in clock ticks (10 ms). The name in
    field 2 may contain spaces: the fields are counted from the ``)`` that ends it.
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / TICKS_PER_SECOND


def rss_bytes(pid: int) -> int:
    """Resident memory of the process (``VmRSS`` of ``/proc/<pid>/status``, Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for process {pid}")


def counters(server: DaphneServer) -> dict[str, Any]:
    """The SQL and Redis counts of a process serving ``bench.asgi`` (see there)."""
    try:
        with urllib.request.urlopen(f"{server.url}/bench/counters", timeout=10) as response:
            return json.loads(response.read())
    except OSError as exc:
        raise BenchError(f"cannot read the counters of daphne on port {server.port}: {exc}") from exc


def multi_process_problem() -> str | None:
    """Why several processes cannot be measured here (None: they can)."""
    missing = []
    if connection.vendor != "postgresql":
        missing.append("PostgreSQL (DATABASE_URL)")
    if not settings.REDIS_URL:
        missing.append("Redis (REDIS_URL)")
    if missing:
        return f"several daphne processes share PostgreSQL and Redis; not set: {', '.join(missing)}"
    return None


@dataclass
class Logs:
    """What the logs of the processes started so far said."""

    servers: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # by problem, and "errors"
    examples: dict[str, list[str]] = field(default_factory=dict)  # the first few lines of each

    def read(self, server: DaphneServer, label: str) -> None:
        self.servers += 1
        try:
            text = server.log_path.read_text(errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            for problem in LOG_PROBLEMS:
                if problem in line:
                    self._note(problem, label, line)
            if LOG_ERRORS.search(line):
                self._note("errors", label, line)

    def _note(self, kind: str, label: str, line: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < 3:
            examples.append(f"{label}: {line.strip()[:220]}")

    def report(self) -> None:
        print(f"Daphne logs ({self.servers} processes, read in full when each stopped; logs in {settings.VAR_DIR})")
        for kind in (*LOG_PROBLEMS, "errors"):
            count = self.counts.get(kind, 0)
            title = repr(kind) if kind != "errors" else "tracebacks and ERROR lines"
            print(f"  {title}: {f'{count} lines' if count else 'none'}")
            for example in self.examples.get(kind, []):
                print(f"    {example}")


LOGS = Logs()


@contextlib.contextmanager
def daphne(label: str, env: dict[str, str], *, app: str = "agentsite.asgi:application") -> Iterator[DaphneServer]:
    """One daphne process for the block; its log is read when it stops."""
    server = DaphneServer(env=env, app=app)
    try:
        server.start()
    except RuntimeError as exc:
        raise BenchError(f"{label}: {exc}") from exc
    try:
        yield server
    finally:
        server.stop()
        LOGS.read(server, f"{label} (port {server.port})")


@contextlib.contextmanager
def cluster(label: str, count: int, env: dict[str, str], *, app: str = "agentsite.asgi:application") -> Iterator[list[DaphneServer]]:
    """``count`` daphne processes sharing the database and Redis."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(daphne(f"{label} #{index + 1}", env, app=app)) for index in range(count)]


async def wait_quiet(servers: list[DaphneServer], *, timeout: float = 30.0, interval: float = 0.5) -> None:
    """Wait until the processes use (almost) no CPU: what the last step set going is over.

    Not a failure if they never do (a busy machine): the figures that follow say so.
    """
    pids = [s.process.pid for s in servers if s.process]
    deadline = time.monotonic() + timeout
    before = sum(map(cpu_seconds, pids))
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        now = sum(map(cpu_seconds, pids))
        if now - before <= 0.02 * len(pids):
            return
        before = now
