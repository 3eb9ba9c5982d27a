"""Rule 4: Redis failing only slows things down. Real servers, real sockets."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from chat.redis_client import SharedRedis
from chat.storage import HybridStorage
from chat.storage.redis_cache import RedisMessageCache
from tests.factories import new_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cache_at(settings):
    """A cache on the Redis at ``url``; ``retry_interval`` is the process's breaker's."""

    def make(url: str, *, socket_timeout: float = 0.25, connect_timeout: float = 0.25, retry_interval: float = 0.2):
        settings.REDIS_RETRY_INTERVAL = retry_interval
        redis = SharedRedis(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        return RedisMessageCache(redis, ttl=60, max_messages=50)

    return make


@pytest.fixture
def redis_server():
    """A redis-server of this test's own, which the test may stop and resume."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield process, f"redis://127.0.0.1:{port}/0"
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a hung Redis."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    accepted = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


async def test_redis_unreachable_saves_and_loads_still_work_and_it_is_logged_once(owner, cache_at, caplog):
    storage = HybridStorage(cache=cache_at(f"redis://127.0.0.1:{free_port()}/0", retry_interval=0.01))
    sid = await new_chat(owner)
    with caplog.at_level(logging.WARNING, logger="chat.redis_client"):
        for i in range(6):
            await storage.save_messages(sid, [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"}])
            time.sleep(0.02)  # past the retry interval: every call really tries Redis
        recent = await storage.load_recent_messages(sid)
        window = await storage.load_within_budget(sid, 1000)
    assert [m["content"] for m in recent] == [f"m{i}" for i in range(6)]
    assert [m["content"] for m in window] == [f"m{i}" for i in range(6)]
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1


async def test_redis_that_never_answers_costs_one_timeout_and_requests_come_from_the_database(owner, cache_at, silent_server):
    url, accepted = silent_server
    storage = HybridStorage(cache=cache_at(url, socket_timeout=0.2, connect_timeout=0.2, retry_interval=30))
    sid = await new_chat(owner)
    started = time.monotonic()
    await storage.save_messages(sid, [{"role": "user", "content": "hello"}])
    loaded = await storage.load_recent_messages(sid)
    elapsed = time.monotonic() - started
    assert [m["content"] for m in loaded] == ["hello"]
    assert accepted, "the client did reach the silent server"
    # Not a speed target: a bound far above the 0.2 s timeout that a hang would exceed.
    assert elapsed < 5, elapsed


async def test_redis_paused_and_resumed_never_serves_data_cached_before_the_outage(owner, cache_at, redis_server):
    process, url = redis_server
    cache = cache_at(url, retry_interval=0.5)
    storage = HybridStorage(cache=cache)
    sid = await new_chat(owner)
    for i in range(4):
        await storage.save_messages(sid, [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"}])
    assert len(await cache.read_recent(str(sid), 4)) == 4  # warm

    os.kill(process.pid, signal.SIGSTOP)  # Redis keeps its data but stops answering
    try:
        # The first write's cache update times out but sits in Redis's socket buffer and is
        # applied on resume; the second is never sent (the cache is bypassed after a failure).
        await storage.save_messages(sid, [{"role": "user", "content": "during the outage"}])
        await storage.save_messages(sid, [{"role": "assistant", "content": "also during"}])
        during = await storage.load_recent_messages(sid)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    expected = ["m0", "m1", "m2", "m3", "during the outage", "also during"]
    assert [m["content"] for m in during] == expected

    time.sleep(0.6)  # past the retry interval
    after = await storage.load_recent_messages(sid)
    assert [m["content"] for m in after] == expected
    refilled = await cache.read_recent(str(sid), 6)
    assert refilled is not None, "the cache refills once Redis is back"
    assert [m["content"] for m in refilled] == expected


async def test_redis_restarted_empty_refills_from_the_database(owner, cache_at, redis_server):
    process, url = redis_server
    cache = cache_at(url, retry_interval=0.1)
    storage = HybridStorage(cache=cache)
    sid = await new_chat(owner)
    await storage.save_messages(sid, [{"role": "user", "content": "kept"}])
    port = url.rsplit(":", 1)[1].split("/")[0]
    process.terminate()
    process.wait(timeout=10)
    await storage.save_messages(sid, [{"role": "assistant", "content": "while down"}])
    assert [m["content"] for m in await storage.load_recent_messages(sid)] == ["kept", "while down"]

    restarted = subprocess.Popen(
        [shutil.which("redis-server"), "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not await cache_at(url, retry_interval=0.1).ping():
            time.sleep(0.05)
        time.sleep(0.15)
        assert [m["content"] for m in await storage.load_recent_messages(sid)] == ["kept", "while down"]
        assert await cache.read_recent(str(sid), 2) is not None
    finally:
        restarted.terminate()
        restarted.wait(timeout=10)
