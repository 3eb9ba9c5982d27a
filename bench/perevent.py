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
The wall time is the issue's figure; the server CPU beside it (the processes' utime +
stime over the whole run, its start and end included: both processes for "another") is
the same comparison with far less of the machine's noise in it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Awaitable, Callable

from bench.client import Chat, connect_socket
from bench.servers import BenchError, cluster, cpu_seconds, multi_process_problem
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


@dataclass(frozen=True)
class Run:
    wall: float  # seconds from the first delta to the last, at the reading socket
    cpu: float  # CPU seconds the server processes involved used for the run


async def same_process(server: DaphneServer, cookie: str) -> Run:
    chat = await Chat.open(server.url, cookie)
    try:
        before = _cpu([server])
        await chat.send_message(COMMAND)
        wall = await chat.read_deltas(EVENTS)
        await chat.read_until("complete")
        return Run(wall, _cpu([server]) - before)
    finally:
        await chat.close()


async def other_process(runner: DaphneServer, reader: DaphneServer, cookie: str) -> Run:
    listening = await Chat.open(reader.url, cookie)
    try:
        sender = await Chat.open(runner.url, cookie, session_id=listening.session_id)
        before = _cpu([runner, reader])
        try:
            await sender.send_message(COMMAND)
            frame = await sender.recv(30, "the message to be stored")
            if frame["type"] != "message":
                raise BenchError(f"expected the stored user message first, got {frame}")
        finally:
            await sender.close()
        wall = await listening.read_deltas(EVENTS)
        await listening.read_until("complete")
        return Run(wall, _cpu([runner, reader]) - before)
    finally:
        await listening.close()


async def bare(server: DaphneServer, cookie: str) -> Run:
    before = _cpu([server])  # the handshake is counted: a millisecond, against the 10,000 frames
    ws = await connect_socket(server.url, cookie, f"/ws/bench/bare/{EVENTS}/8/")
    try:
        wall = await Chat(ws, "bare").read_deltas(EVENTS)
        return Run(wall, _cpu([server]) - before)
    finally:
        await ws.close()


def _cpu(servers: list[DaphneServer]) -> float:
    return sum(cpu_seconds(server.process.pid) for server in servers if server.process)


async def per_event_cost(cookie: str) -> None:
    problem = multi_process_problem()
    print(f"Per-event cost: {EVENTS:,} text_delta events to one socket, real stack vs bare consumer ({ROUNDS} alternating runs, medians)")
    print("  (wall: first to last delta at the socket; CPU: the server processes' own, whole run, both processes when two)")
    with cluster("per event", 1 if problem else 2, ENV, app="bench.asgi:application") as servers:
        a = servers[0]
        kinds: dict[str, Callable[[], Awaitable[Run]]] = {
            "same": lambda: same_process(a, cookie),
            "bare A": lambda: bare(a, cookie),
        }
        if not problem:
            b = servers[1]
            kinds["other"] = lambda: other_process(a, b, cookie)
            kinds["bare B"] = lambda: bare(b, cookie)
        runs: dict[str, list[Run]] = {kind: [] for kind in kinds}
        for _ in range(ROUNDS + 1):  # the first round warms up
            for kind, run in kinds.items():
                runs[kind].append(await run())
    _row("socket on the run's process", runs["same"][1:], runs["bare A"][1:], f"target <= {SAME_TARGET:g}")
    if problem:
        print(f"  socket on another process: skipped ({problem})")
    else:
        _row("socket on another process", runs["other"][1:], runs["bare B"][1:], "run on A, socket on B, through Redis")


def _row(label: str, real_runs: list[Run], bare_runs: list[Run], note: str) -> None:
    real, floor = statistics.median(r.wall for r in real_runs), statistics.median(r.wall for r in bare_runs)
    real_cpu, floor_cpu = statistics.median(r.cpu for r in real_runs), statistics.median(r.cpu for r in bare_runs)
    print(
        f"  {label}: wall real {real / EVENTS * 1e6:5.1f} us/event, bare {floor / EVENTS * 1e6:5.1f}: ratio {real / floor:5.2f} ({note})"
    )
    print(
        f"    server CPU: real {real_cpu / EVENTS * 1e6:5.1f} us/event, bare {floor_cpu / EVENTS * 1e6:5.1f}: ratio {real_cpu / floor_cpu:5.2f}"
    )
