"""Websocket benchmarks (issue 4). Run with ``bin/bench websocket``.

1. Per-event cost: 10,000 text_delta events streamed to one client through the real stack
   (agent run, event log, channel-layer group, consumer, relay) against the same number of
   frames sent by a bare consumer on the same daphne process; runs alternate, medians of
   the time from the first to the last delta are compared.
2. Latency under load: N concurrent sessions on one daphne process with the offline model,
   each sending one message at once; time from sending it to its first text_delta. Once
   with the offline model's default pace (words streamed as a model streams them), once
   with no pause between words (every reply at once: the process's throughput decides).
   The client runs on the same machine and takes its share of the CPU.

Measured against whatever DATABASE_URL / REDIS_URL point at (the targets are for
PostgreSQL and Redis). Servers run on a throwaway database.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid

from bench import setup_django, throwaway_database

setup_django()

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from tests.live import DaphneServer, session_cookie  # noqa: E402

EVENTS = 10_000
ROUNDS = 5


async def open_chat(server: DaphneServer, cookie: str, path: str | None = None):
    url = f"{server.ws_url}{path or f'/ws/chat/{uuid.uuid4()}/'}"
    return await connect(
        url,
        additional_headers={"Cookie": f"sessionid={cookie}", "Origin": server.url},
        compression=None,
        proxy=None,
        max_size=None,
        max_queue=None,
    )


async def stream_real(server: DaphneServer, cookie: str) -> float:
    async with await open_chat(server, cookie) as ws:
        await ws.recv()  # ready
        await ws.send(json.dumps({"type": "user_message", "text": f"firehose {EVENTS} 8"}))
        first, seen = None, 0
        while seen < EVENTS:
            frame = json.loads(await ws.recv())
            if frame["type"] == "text_delta":
                seen += 1
                first = first or time.perf_counter()
        return time.perf_counter() - first


async def stream_bare(server: DaphneServer, cookie: str) -> float:
    async with await open_chat(server, cookie, f"/ws/bench/bare/{EVENTS}/8/") as ws:
        first, seen = None, 0
        while seen < EVENTS:
            json.loads(await ws.recv())
            seen += 1
            first = first or time.perf_counter()
        return time.perf_counter() - first


async def per_event_cost(cookie: str) -> None:
    env = {"AGENT_PROVIDER": "tests.fakes.firehose.FirehoseProvider", "WS_UNACKED_LIMIT": "1000000", "CHAT_RATE_LIMIT_PER_MINUTE": "100000"}
    with DaphneServer(env=env, app="bench.asgi:application") as server:
        await stream_real(server, cookie)  # warm-up
        await stream_bare(server, cookie)
        real, bare = [], []
        for _ in range(ROUNDS):
            real.append(await stream_real(server, cookie))
            bare.append(await stream_bare(server, cookie))
    r, b = statistics.median(real), statistics.median(bare)
    print(f"Per-event cost, {EVENTS:,} text_delta events to one client ({ROUNDS} alternating runs, medians)")
    print(f"  real stack: {r:6.3f} s ({r / EVENTS * 1e6:6.1f} us/event)   bare consumer: {b:6.3f} s ({b / EVENTS * 1e6:6.1f} us/event)")
    print(f"  ratio real / bare: {r / b:5.2f}   (target <= 1.3, with Redis)")


async def first_delta_latency(server: DaphneServer, cookie: str, sessions: int) -> list[float]:
    sockets = [await open_chat(server, cookie) for _ in range(sessions)]
    try:
        for ws in sockets:
            await ws.recv()  # ready

        async def one(ws) -> float:
            start = time.perf_counter()
            await ws.send(json.dumps({"type": "user_message", "text": "hello, how are you today?"}))
            latency = None
            frame = {"type": ""}
            while frame["type"] not in ("complete", "error"):
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                except TimeoutError:
                    raise SystemExit("a session's reply stopped arriving: events were lost") from None
                if frame["type"] == "text_delta" and latency is None:
                    latency = time.perf_counter() - start
            if frame["type"] == "error" or latency is None:
                raise SystemExit(f"a session's run did not stream a reply: {frame}")
            return latency

        return await asyncio.gather(*(one(ws) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()


async def latency_under_load(cookie: str, word_delay: float) -> None:
    env = {"CHAT_RATE_LIMIT_PER_MINUTE": "100000", "OFFLINE_MODEL_WORD_DELAY": str(word_delay)}
    pace = f"{word_delay} s between words" if word_delay else "no pause between words"
    print(f"Time from user_message to the first text_delta, N concurrent sessions on one daphne process (offline model, {pace})")
    with DaphneServer(env=env) as server:
        await first_delta_latency(server, cookie, 5)  # warm-up
        for sessions in (20, 50, 100, 200):
            latencies = sorted(await first_delta_latency(server, cookie, sessions))
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"  {sessions:>4} sessions: median {statistics.median(latencies) * 1e3:7.1f} ms   p99 {p99 * 1e3:7.1f} ms")


async def main() -> None:
    user = await sync_to_async(get_user_model().objects.create_user)(f"bench-{uuid.uuid4().hex[:8]}")
    cookie = await sync_to_async(session_cookie)(user)
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}; redis: {'yes' if settings.REDIS_URL else 'no'}\n")
    await per_event_cost(cookie)
    await latency_under_load(cookie, settings.OFFLINE_MODEL_WORD_DELAY)
    await latency_under_load(cookie, 0)


if __name__ == "__main__":
    with throwaway_database():
        asyncio.run(main())
