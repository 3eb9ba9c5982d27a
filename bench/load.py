"""First word under load: N concurrent sessions, time from ``user_message`` to the first
``text_delta``.

The offline model streams its 50-word reply to "hello, how are you today?" at its default
pace (``OFFLINE_MODEL_WORD_DELAY``, 0.02 s before each word), as Chainlit's side does
(``PEER_BENCH``'s app.py). The N sockets are opened one after another until every one has
its ``ready``; then all N send at once, and each reads its whole reply (ids without a gap,
the deltas adding up to the stored reply) before the next N starts. Chats are new each
time (created and titled by their first message). The client is one Python process on
the same cores, as Chainlit's is.

Each N is measured ``REPS`` times (Chainlit's recorded figures are medians of 3 runs);
the medians and p99s printed are the medians of the repetitions'. On one process, when
Chainlit can be run (``bench/peer.py``), its repetitions alternate with ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from bench import haproxy, peer
from bench.client import Chat, close_all
from bench.servers import BenchError, cluster, cpu_seconds, daphne, multi_process_problem, wait_quiet

SIZES = (20, 50, 100, 200)
REPS = 3
PROCESS_COUNTS = (2, 4)
TEXT = "hello, how are you today?"
WARM_UP = 5
# Chainlit 2.12.0 on the development machine, medians of 3 runs (PEER_BENCH's README), ms.
CHAINLIT_RECORDED = {20: 98.0, 50: 237.0, 100: 472.0, 200: 901.0}
RATIO_TARGET = 3.0
AT_200_TARGET_MS = 900.0


@dataclass(frozen=True)
class Latencies:
    sessions: int
    median_ms: float
    p99_ms: float
    ok: int = 0
    # What went wrong with the sessions that got no whole reply, and how often.
    failures: dict[str, int] = field(default_factory=dict)

    @classmethod
    def combine(cls, runs: list[Latencies]) -> Latencies:
        """Repetitions of one N: the medians of their medians and p99s, failures summed."""
        timed = [run for run in runs if run.ok]
        failures: Counter[str] = Counter()
        for run in runs:
            failures.update(run.failures)
        return cls(
            runs[0].sessions * len(runs),
            statistics.median(run.median_ms for run in timed) if timed else math.nan,
            statistics.median(run.p99_ms for run in timed) if timed else math.nan,
            sum(run.ok for run in runs),
            dict(failures),
        )

    @classmethod
    def of_chainlit(cls, figure: dict[str, Any]) -> Latencies:
        kinds = figure.get("failure_kinds") or ["?"]
        failures = {f"chainlit: {', '.join(kinds)}": figure["failures"]} if figure.get("failures") else {}
        return cls(figure["sessions"], figure.get("median_ms", math.nan), figure.get("p99_ms", math.nan), figure["ok"], failures)


async def first_words(base_url: str, cookie: str, sessions: int) -> Latencies:
    """One measurement at N = ``sessions``. A session that fails (its socket refused or
    closed, its reply cut or wrong) is counted with the reason, not timed; the others go on."""
    chats: list[Chat] = []
    failures: Counter[str] = Counter()
    try:
        for _ in range(sessions):
            try:
                chats.append(await Chat.open(base_url, cookie))
            except BenchError as exc:
                failures[_kind(exc)] += 1

        async def one(chat: Chat) -> float | None:
            try:
                return (await chat.read_reply(await chat.send_message(TEXT))).first_delta
            except BenchError as exc:
                failures[_kind(exc)] += 1
                return None

        timed = await asyncio.gather(*(one(chat) for chat in chats))
    finally:
        await close_all(chats)
    latencies = sorted(t for t in timed if t is not None)
    if not latencies:
        return Latencies(sessions, math.nan, math.nan, 0, dict(failures))
    # The same p99 as Chainlit's load client computes.
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Latencies(sessions, statistics.median(latencies) * 1e3, p99 * 1e3, len(latencies), dict(failures))


def _kind(exc: BenchError) -> str:
    return re.sub(r" \(chat [0-9a-f-]+\)", "", str(exc))


async def first_word(cookie: str) -> None:
    """The whole part: one process beside Chainlit, then 2 and 4 behind HAProxy."""
    delay = settings.OFFLINE_MODEL_WORD_DELAY
    env = {"CHAT_RATE_LIMIT_PER_MINUTE": "1000000", "OFFLINE_MODEL_WORD_DELAY": str(delay)}
    what = f"offline model, {delay:g} s between words; sockets opened first, then all send at once; medians of {REPS} runs"
    problem = peer.missing()
    peer_title = "Chainlit 2.12.0, this run" if problem is None else f"Chainlit, recorded (not run here: {problem})"
    _header(f"First word: user_message to first text_delta, N sessions on one daphne process ({what})", peer_title)
    with daphne("first word, 1 process", env) as server:
        with peer.chainlit(delay) if problem is None else contextlib.nullcontext() as port:
            await first_words(server.url, cookie, WARM_UP)
            results = []
            for sessions in SIZES:
                ours, theirs = [], []
                for _ in range(REPS):
                    await wait_quiet([server])  # runs of sessions that failed may still be going
                    ours.append(await first_words(server.url, cookie, sessions))
                    if port is not None:
                        theirs.append(Latencies.of_chainlit(await asyncio.to_thread(peer.first_tokens, port, sessions)))
                results.append(_row(sessions, Latencies.combine(ours), Latencies.combine(theirs) if theirs else None))
    _verdict(results)
    for count in PROCESS_COUNTS:
        await _behind_haproxy(cookie, count, env, what)


async def _behind_haproxy(cookie: str, count: int, env: dict[str, str], what: str) -> None:
    title = f"First word, N sessions on {count} daphne processes behind HAProxy round-robin"
    problem = multi_process_problem() or haproxy.missing()
    if problem:
        print(f"{title}: skipped ({problem})")
        return
    _header(f"{title} ({what})", "")
    with cluster(f"first word, {count} processes", count, env) as servers, haproxy.haproxy(servers) as url:
        await first_words(url, cookie, WARM_UP)
        pids = [server.process.pid for server in servers if server.process]
        before = [cpu_seconds(pid) for pid in pids]
        results = []
        for sessions in SIZES:
            runs = []
            for _ in range(REPS):
                await wait_quiet(servers)
                runs.append(await first_words(url, cookie, sessions))
            results.append(_row(sessions, Latencies.combine(runs), None, peer=False))
        used = [cpu_seconds(pid) - start for pid, start in zip(pids, before)]
    _verdict(results)
    print(f"  CPU each process used over these runs (how evenly the sessions spread): {', '.join(f'{s:.1f} s' for s in used)}")


def _header(title: str, peer_title: str) -> None:
    print(title)
    print(f"  {'sessions':>8}   {'median':>9}   {'p99':>9}   {peer_title}")


def _row(sessions: int, ours: Latencies, theirs: Latencies | None, *, peer: bool = True) -> Latencies:
    if not peer:
        beside = ""
    elif theirs is None:
        recorded = CHAINLIT_RECORDED[sessions]
        beside = f"median {recorded:4.0f} ms   (ours / theirs {ours.median_ms / recorded:.2f})"
    else:
        beside = (
            f"median {theirs.median_ms:4.0f} ms, p99 {theirs.p99_ms:4.0f} ms   "
            f"(ours / theirs {ours.median_ms / theirs.median_ms:.2f}; recorded {CHAINLIT_RECORDED[sessions]:.0f} ms)"
        )
    print(f"  {sessions:>8}   {ours.median_ms:6.0f} ms   {ours.p99_ms:6.0f} ms   {beside}")
    for side in (ours, theirs):
        if side is not None and side.failures:
            print(f"           {side.sessions - side.ok} of {side.sessions} sessions ({REPS} runs) got no whole reply:")
            for kind, count in sorted(side.failures.items(), key=lambda item: -item[1]):
                print(f"             {count} x {kind[:300]}")
    return Latencies(sessions, ours.median_ms, ours.p99_ms, ours.ok, ours.failures)


def _verdict(results: list[Latencies]) -> None:
    by_size = {r.sessions: r for r in results if r.ok}
    if 20 in by_size and 200 in by_size:
        ratio = by_size[200].median_ms / by_size[20].median_ms
        at_200 = by_size[200].median_ms
        print(
            f"  median at 200 / at 20: {ratio:.1f}x (target <= {RATIO_TARGET:g}x: {'meets' if ratio <= RATIO_TARGET else 'misses'});"
            f" at 200: {at_200 / 1e3:.2f} s (target <= {AT_200_TARGET_MS / 1e3:g} s: {'meets' if at_200 <= AT_200_TARGET_MS else 'misses'})"
        )
