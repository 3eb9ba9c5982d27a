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
import contextlib
import os
import sys
import uuid
from typing import Awaitable, Callable

from bench import setup_django, throwaway_database

setup_django()

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402

from bench import haproxy, load, peer  # noqa: E402
from bench.client import REFUSED  # noqa: E402
from bench.perevent import per_event_cost  # noqa: E402
from bench.servers import LOGS, BenchError, cluster, cpu_seconds, daphne, multi_process_problem, wait_quiet  # noqa: E402
from bench.turncost import turn_cost  # noqa: E402
from tests.live import session_cookie  # noqa: E402

PROCESS_COUNTS = (2, 4)


async def first_word(cookie: str) -> None:
    delay = settings.OFFLINE_MODEL_WORD_DELAY
    env = {"CHAT_RATE_LIMIT_PER_MINUTE": "1000000", "OFFLINE_MODEL_WORD_DELAY": str(delay)}
    what = f"offline model, {delay:g} s between words; sockets opened first, then all send at once"
    problem = peer.missing()
    peer_title = "Chainlit 2.12.0, this run" if problem is None else f"Chainlit, recorded (not run here: {problem})"
    load.header(f"First word: user_message to first text_delta, N sessions on one daphne process ({what})", peer_title)
    with daphne("first word, 1 process", env) as server:
        with peer.chainlit(delay) if problem is None else contextlib.nullcontext() as port:
            await load.warm_up(server.url, cookie)
            results = []
            for sessions in load.SIZES:
                await wait_quiet([server])  # runs of sessions that failed may still be going
                ours = await load.first_words(server.url, cookie, sessions)
                if port is None:
                    theirs = load.CHAINLIT_RECORDED[sessions]
                    load.row(ours, f"median {theirs:4.0f} ms   (ours / theirs {ours.median_ms / theirs:.2f})")
                else:
                    measured = await asyncio.to_thread(peer.first_tokens, port, sessions)
                    load.row(
                        ours,
                        f"median {measured.median_ms:4.0f} ms, p99 {measured.p99_ms:4.0f} ms   "
                        f"(ours / theirs {ours.median_ms / measured.median_ms:.2f}; recorded {load.CHAINLIT_RECORDED[sessions]:.0f} ms)",
                    )
                results.append(ours)
    load.verdict(results)
    for count in PROCESS_COUNTS:
        await _behind_haproxy(cookie, count, env, what)


async def _behind_haproxy(cookie: str, count: int, env: dict[str, str], what: str) -> None:
    title = f"First word, N sessions on {count} daphne processes behind HAProxy round-robin"
    problem = multi_process_problem() or haproxy.missing()
    if problem:
        print(f"{title}: skipped ({problem})")
        return
    load.header(f"{title} ({what})", "")
    with cluster(f"first word, {count} processes", count, env) as servers, haproxy.haproxy(servers) as url:
        await load.warm_up(url, cookie)
        pids = [server.process.pid for server in servers if server.process]
        before = [cpu_seconds(pid) for pid in pids]
        results = []
        for sessions in load.SIZES:
            await wait_quiet(servers)
            results.append(await load.first_words(url, cookie, sessions))
        used = [cpu_seconds(pid) - start for pid, start in zip(pids, before)]
    for result in results:
        load.row(result)
    load.verdict(results)
    print(f"  CPU each process used over these runs (the sessions' spread): {', '.join(f'{s:.1f} s' for s in used)}")


PARTS: dict[str, Callable[[str], Awaitable[None]]] = {
    "turns": turn_cost,
    "events": per_event_cost,
    "load": first_word,
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
