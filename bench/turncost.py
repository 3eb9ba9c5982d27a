"""Server CPU per turn start, read from the daphne process's own CPU time.

One daphne process serves ``bench.asgi`` with the firehose model, which answers anything
but ``firehose N`` with one four-character delta: what a turn costs is then its start
(rate limit, claim and store, events announcing it, run task, title) and its end, not the
streaming. ``TURNS`` sockets on new chats are opened first (all ``ready``). Then, in
``ROUNDS`` rounds, ``TURNS / ROUNDS`` of them send their chat's first message one after
the other (each waits for its ``complete`` and its ``title`` before the next is sent),
then the same sockets send a second message (a chat that exists: no creation, no title).

The CPU of a series is the process's utime + stime (``/proc/<pid>/stat``, every thread)
after it less before it, less the idle baseline: the rate at which the same process, with
the same sockets open, burns CPU doing nothing (``IDLE`` seconds before every series,
pooled). The client runs in another process: its CPU is not counted. CPU time moves less
than wall time when other programs share the cores, but it does move (a process that is
preempted all the time finds its caches cold): on the 2-core development machine, saturated
by other test suites (load average 7 to 14), it read up to half as much again as at a load
average of 1. Compare runs made at a similar load (printed at the start and the end).

The SQL statements and Redis commands per turn are the process's own counts over the
same series (``bench.asgi``), divided by the number of turns. The process's resident memory
is read before the sockets open, once they are open, and after all the turns.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.client import Chat, close_all
from bench.servers import counters, cpu_seconds, daphne, rss_bytes, wait_quiet

TURNS = 200
ROUNDS = 5
IDLE = 1.0
TARGET_MS = 7.0
ENV = {
    "AGENT_PROVIDER": "tests.fakes.firehose.FirehoseProvider",
    "CHAT_RATE_LIMIT_PER_MINUTE": "1000000",
}


@dataclass
class Series:
    """One kind of turn, summed over its rounds."""

    label: str
    # Per round: turns, CPU seconds the process used, wall seconds the round took.
    rounds: list[tuple[int, float, float]] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)  # send to complete, per turn
    first_delta: list[float] = field(default_factory=list)
    sql: Counter[str] = field(default_factory=Counter)
    redis: Counter[str] = field(default_factory=Counter)
    round_trips: int = 0
    reopened: int = 0  # sockets the server had closed before their turn


async def turn_cost(cookie: str) -> None:
    print(f"Server CPU per turn start: {TURNS} turns of each kind on one daphne process, one after another")
    print("  (firehose model, one-word reply; the process's utime+stime less its idle rate; SQL and Redis as it counts them)")
    with daphne("turn cost", ENV, app="bench.asgi:application") as server:
        assert server.process is not None
        pid = server.process.pid
        # Warm up: the first turns of a process import and connect what later turns reuse.
        warm = [await Chat.open(server.url, cookie) for _ in range(5)]
        for chat in warm:
            await chat.read_reply(await chat.send_message("hello"), title=True, check_text=False)
        await close_all(warm)
        memory = [rss_bytes(pid)]
        chats = [await Chat.open(server.url, cookie) for _ in range(TURNS)]
        memory.append(rss_bytes(pid))
        try:
            await wait_quiet([server])
            new, follow_up = Series("first message of a new chat"), Series("next message in the chat")
            idle_cpu = idle_time = 0.0
            size = TURNS // ROUNDS
            for start in range(0, TURNS, size):
                for series, title in ((new, True), (follow_up, False)):
                    cpu, seconds = await _idle(pid)
                    idle_cpu, idle_time = idle_cpu + cpu, idle_time + seconds
                    await _series(server, pid, chats[start : start + size], series, title=title)
            memory.append(rss_bytes(pid))
        finally:
            await close_all(chats)
    rate = idle_cpu / idle_time
    print(f"  idle baseline: {rate * 1e3:.1f} ms of CPU per second ({idle_time:.0f} s measured, {TURNS} sockets open)")
    for series in (new, follow_up):
        _print(series, rate)
    mib = [size / 2**20 for size in memory]
    print(
        f"  memory (RSS): {mib[0]:.0f} MiB with no socket open, {mib[1]:.0f} MiB with {TURNS} open "
        f"({(memory[1] - memory[0]) / TURNS / 1024:.0f} KiB per socket), {mib[2]:.0f} MiB after their {2 * TURNS} turns"
    )


async def _idle(pid: int) -> tuple[float, float]:
    before, start = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(IDLE)
    return cpu_seconds(pid) - before, time.perf_counter() - start


async def _series(server: Any, pid: int, chats: list[Chat], series: Series, *, title: bool) -> None:
    for chat in chats:
        if chat.closed:
            # Closed while idle (4503 when the process's Redis subscription broke): opened
            # again, outside the measurement; the log report says why it happened.
            series.reopened += 1
            await chat.reopen()
    counted_before = counters(server)
    cpu_before, start = cpu_seconds(pid), time.perf_counter()
    for chat in chats:
        reply = await chat.read_reply(await chat.send_message("hello"), title=title, check_text=False)
        series.wall.append(reply.done_at - reply.sent_at)
        series.first_delta.append(reply.first_delta)
    series.rounds.append((len(chats), cpu_seconds(pid) - cpu_before, time.perf_counter() - start))
    counted_after = counters(server)
    series.sql.update(_delta(counted_before["sql"], counted_after["sql"]))
    series.redis.update(_delta(counted_before["redis"], counted_after["redis"]))
    series.round_trips += counted_after["redis_round_trips"] - counted_before["redis_round_trips"]


def _delta(before: dict[str, int], after: dict[str, int]) -> Counter[str]:
    return Counter({key: after[key] - before.get(key, 0) for key in after if after[key] > before.get(key, 0)})


def _print(series: Series, idle_rate: float) -> None:
    turns = sum(n for n, _, _ in series.rounds)
    per_turn = sum(cpu - idle_rate * wall for _, cpu, wall in series.rounds) / turns * 1e3
    rounds = ", ".join(f"{(cpu - idle_rate * wall) / n * 1e3:.1f}" for n, cpu, wall in series.rounds)
    verdict = "meets" if per_turn <= TARGET_MS else "misses"
    print(f"  {series.label}: {per_turn:5.1f} ms CPU per turn   (rounds of {turns // ROUNDS}: {rounds}; target <= {TARGET_MS:g}: {verdict})")
    print(
        f"    wall, unloaded: first delta {statistics.median(series.first_delta) * 1e3:.1f} ms, "
        f"complete {statistics.median(series.wall) * 1e3:.1f} ms (medians)"
    )
    print(f"    SQL per turn: {_per_turn(series.sql, turns)}")
    print(f"    Redis per turn: {_per_turn(series.redis, turns)}; {series.round_trips / turns:.1f} round trips")
    if series.reopened:
        print(f"    {series.reopened} sockets had been closed by the server while idle and were opened again before their turn")


def _per_turn(counts: Counter[str], turns: int) -> str:
    if not counts:
        return "none"
    total = sum(counts.values()) / turns
    parts = ", ".join(f"{name} {count / turns:.2g}" for name, count in counts.most_common())
    return f"{total:.1f} ({parts})"
