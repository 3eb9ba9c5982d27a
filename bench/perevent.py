"""Per-event cost: the real stack against a bare consumer, on the run's process and another.

10,000 text_delta events of the firehose model reach one socket; the time from its first to
its last delta is compared with the time a bare consumer (``bench.asgi``) takes to send as
many frames of the same shape on the same process: the floor of any websocket stack there.

- **Same process**: the socket is on the process that runs the turn (events reach it by a
  method call, ``chat.runs.hub``).
- **Another process** (needs PostgreSQL and Redis): the run is on process A, the socket
  that reads on process B. A socket on A sends the message and closes once it is stored
  (a run outlives its socket), so that A delivers nothing itself; B hears every batch on
  the chat's Redis channel. Compared with the bare consumer on B.

The four kinds of run alternate (same, bare A, other, bare B, …); medians are compared.
"""

from __future__ import annotations

import statistics
from typing import Awaitable, Callable

from bench.client import Chat, connect_socket
from bench.servers import BenchError, cluster, multi_process_problem
from tests.live import DaphneServer

EVENTS = 10_000
ROUNDS = 5
SAME_TARGET = 1.5
ENV = {
    "AGENT_PROVIDER": "tests.fakes.firehose.FirehoseProvider",
    "CHAT_RATE_LIMIT_PER_MINUTE": "1000000",
    "WS_UNACKED_LIMIT": "1000000",
}
COMMAND = f"firehose {EVENTS} 8"


async def same_process(server: DaphneServer, cookie: str) -> float:
    chat = await Chat.open(server.url, cookie)
    try:
        await chat.send_message(COMMAND)
        return await chat.read_deltas(EVENTS)
    finally:
        await chat.close()


async def other_process(runner: DaphneServer, reader: DaphneServer, cookie: str) -> float:
    listening = await Chat.open(reader.url, cookie)
    try:
        sender = await Chat.open(runner.url, cookie, session_id=listening.session_id)
        try:
            await sender.send_message(COMMAND)
            frame = await sender.recv(30, "the message to be stored")
            if frame["type"] != "message":
                raise BenchError(f"expected the stored user message first, got {frame}")
        finally:
            await sender.close()
        return await listening.read_deltas(EVENTS)
    finally:
        await listening.close()


async def bare(server: DaphneServer, cookie: str) -> float:
    ws = await connect_socket(server.url, cookie, f"/ws/bench/bare/{EVENTS}/8/")
    try:
        chat = Chat(ws, "bare")
        return await chat.read_deltas(EVENTS)
    finally:
        await ws.close()


async def per_event_cost(cookie: str) -> None:
    problem = multi_process_problem()
    print(f"Per-event cost: {EVENTS:,} text_delta events to one socket, real stack vs bare consumer ({ROUNDS} alternating runs, medians)")
    with cluster("per event", 1 if problem else 2, ENV, app="bench.asgi:application") as servers:
        a = servers[0]
        kinds: dict[str, Callable[[], Awaitable[float]]] = {
            "same": lambda: same_process(a, cookie),
            "bare A": lambda: bare(a, cookie),
        }
        if not problem:
            b = servers[1]
            kinds["other"] = lambda: other_process(a, b, cookie)
            kinds["bare B"] = lambda: bare(b, cookie)
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(ROUNDS + 1):  # the first round warms up
            for kind, run in kinds.items():
                times[kind].append(await run())
    median = {kind: statistics.median(values[1:]) for kind, values in times.items()}
    _row("socket on the run's process", median["same"], median["bare A"], f"target <= {SAME_TARGET:g}")
    if problem:
        print(f"  socket on another process: skipped ({problem})")
    else:
        _row("socket on another process", median["other"], median["bare B"], "run on A, socket on B, through Redis")


def _row(label: str, real: float, floor: float, note: str) -> None:
    print(
        f"  {label}: real {real:6.3f} s ({real / EVENTS * 1e6:5.1f} us/event)   bare {floor:6.3f} s "
        f"({floor / EVENTS * 1e6:5.1f} us/event)   ratio {real / floor:5.2f}   ({note})"
    )
