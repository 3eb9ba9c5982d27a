"""First word under load: N concurrent sessions, time from ``user_message`` to the first
``text_delta``.

The offline model streams its 50-word reply to "hello, how are you today?" at its default
pace (``OFFLINE_MODEL_WORD_DELAY``, 0.02 s before each word), as Chainlit's side does
(``PEER_BENCH``'s app.py). The N sockets are opened one after another until every one has
its ``ready``; then all N send at once, and each reads its whole reply (ids without a gap,
the deltas adding up to the stored reply) before the next N starts. Chats are new each
time (created and titled by their first message). The client is one Python process on
the same cores, as Chainlit's is.
"""

from __future__ import annotations

import asyncio
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

from bench.client import Chat, close_all
from bench.servers import BenchError

SIZES = (20, 50, 100, 200)
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


async def warm_up(base_url: str, cookie: str) -> None:
    await first_words(base_url, cookie, WARM_UP)


def header(title: str, peer: str) -> None:
    print(title)
    print(f"  {'sessions':>8}   {'median':>9}   {'p99':>9}   {peer}")


def row(result: Latencies, peer: str = "") -> None:
    print(f"  {result.sessions:>8}   {result.median_ms:6.0f} ms   {result.p99_ms:6.0f} ms   {peer}")
    if result.failures:
        print(f"           only {result.ok} of {result.sessions} sessions got their whole reply; the others:")
        for kind, count in sorted(result.failures.items(), key=lambda item: -item[1]):
            print(f"             {count} x {kind[:300]}")


def verdict(results: list[Latencies]) -> None:
    by_size = {r.sessions: r for r in results if r.ok}
    if 20 in by_size and 200 in by_size:
        ratio = by_size[200].median_ms / by_size[20].median_ms
        at_200 = by_size[200].median_ms
        print(
            f"  median at 200 / at 20: {ratio:.1f}x (target <= {RATIO_TARGET:g}x: {'meets' if ratio <= RATIO_TARGET else 'misses'});"
            f" at 200: {at_200 / 1e3:.2f} s (target <= {AT_200_TARGET_MS / 1e3:g} s: {'meets' if at_200 <= AT_200_TARGET_MS else 'misses'})"
        )
