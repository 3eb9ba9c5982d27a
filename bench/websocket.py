"""Websocket benchmarks (issue 12). Run with ``bin/bench websocket``.

``python -m bench.websocket [turns] [events] [load]`` runs only the parts named:

1. ``turns``: server CPU per turn start, from the daphne process's own CPU time, with the
   SQL statements and Redis commands a turn costs (``bench/turncost.py``).
2. ``events``: per-event cost, real stack vs a bare consumer, with the socket on the run's
   process and on another one (``bench/perevent.py``).
3. ``load``: first word at N = 20, 50, 100, 200 concurrent sessions on one process, side
   by side with Chainlit when ``PEER_VENV`` is set (``bench/peer.py``; else its recorded
   figures), then on 2 and 4 processes behind HAProxy (``bench/load.py``,
   ``bench/haproxy.py``).

At the end, what the daphne logs said ("Redis unavailable", "database is locked", errors).

Measured against whatever DATABASE_URL / REDIS_URL point at (the targets are for
PostgreSQL and Redis; without them the parts that need several processes are skipped,
with the reason). Servers run on a throwaway database and their own Redis key prefix.
Every wait is bounded: a server, socket or reply that misbehaves ends the run with the
reason (exit status 1), never a hang.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Awaitable, Callable

from bench import setup_django, throwaway_database

setup_django()

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402

from bench import load  # noqa: E402
from bench.client import REFUSED  # noqa: E402
from bench.perevent import per_event_cost  # noqa: E402
from bench.servers import LOGS, BenchError  # noqa: E402
from bench.turncost import turn_cost  # noqa: E402
from tests.live import session_cookie  # noqa: E402

PARTS: dict[str, Callable[[str], Awaitable[None]]] = {
    "turns": turn_cost,
    "events": per_event_cost,
    "load": load.first_word,
}


async def main(parts: list[str]) -> None:
    user = await sync_to_async(get_user_model().objects.create_user)(f"bench-{uuid.uuid4().hex[:8]}")
    cookie = await sync_to_async(session_cookie)(user)
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"database: {database}; redis: {'yes' if settings.REDIS_URL else 'no'}; {os.cpu_count()} cores; {_load()}\n")
    for part in parts:
        await PARTS[part](cookie)
        print()
    _troubles()
    print(f"\n{_load()}")


def _troubles() -> None:
    LOGS.report()
    refused = sum(REFUSED.values())
    print(f"  sockets refused with 4503 (unavailable) at open, and opened again: {refused or 'none'}")


def _load() -> str:
    with open("/proc/loadavg") as loadavg:
        return "load average " + " ".join(loadavg.read().split()[:3])


def run(parts: list[str]) -> int:
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        print(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}", file=sys.stderr)
        return 2
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    failed = None
    with throwaway_database():
        try:
            asyncio.run(main(parts or list(PARTS)))
        except BenchError as exc:
            failed = exc
    if failed is not None:
        _troubles()
        print(f"\nFAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
