"""The process's Redis client sends the commands its tasks issue in one iteration of the
event loop together, in one pipeline, and gives each caller its own reply or error.
A real Redis (REDIS_URL), and a port nothing listens on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid

import pytest
import redis.asyncio.connection
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from chat.redis_client import BREAKER, REDIS_ERRORS, SharedRedis

pytestmark = pytest.mark.redis


@contextlib.contextmanager
def counting_round_trips():
    """How many times a client connection wrote to Redis (a pipeline is one write)."""
    sent = [0]
    original = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def counted(self, *args, **kwargs):
        sent[0] += 1
        return await original(self, *args, **kwargs)

    redis.asyncio.connection.AbstractConnection.send_packed_command = counted
    try:
        yield sent
    finally:
        redis.asyncio.connection.AbstractConnection.send_packed_command = original


@pytest.fixture
def shared():
    return SharedRedis(settings.REDIS_URL, socket_timeout=2.0, connect_timeout=2.0)


async def test_commands_issued_together_share_one_round_trip_and_each_caller_gets_its_reply(shared, key_prefix):
    client, key = shared.get(), f"{key_prefix}:counter"
    await client.ping()  # the connection is open: what follows is counted alone
    with counting_round_trips() as sent:
        replies = await asyncio.gather(*(client.incr(key) for _ in range(50)))
    assert sorted(replies) == list(range(1, 51))  # fifty INCRs, each caller its own count
    assert sent[0] == 1
    with counting_round_trips() as sent:
        assert await client.get(key) == b"50"  # a lone command goes at once, alone
        assert await client.incr(key) == 51
    assert sent[0] == 2
    await shared.aclose()


async def test_one_commands_error_is_its_callers_alone(shared, key_prefix):
    client, key = shared.get(), f"{key_prefix}:text"
    await client.set(key, "plain")
    replies = await asyncio.gather(client.get(key), client.hget(key, "field"), client.strlen(key), return_exceptions=True)
    assert replies[0] == b"plain" and replies[2] == 5
    assert isinstance(replies[1], ResponseError) and "WRONGTYPE" in str(replies[1])
    assert not BREAKER.is_open  # a command's own error says nothing about Redis being away
    await shared.aclose()


async def test_a_script_redis_does_not_know_yet_is_loaded_and_run_for_every_caller_of_a_batch(shared, key_prefix):
    client = shared.get()
    # A script no Redis has seen (its text is new): EVALSHA answers NOSCRIPT, and each
    # caller loads it and runs it again.
    script = client.register_script(f"-- {uuid.uuid4()}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    replies = await asyncio.gather(*(script(keys=[f"{key_prefix}:sum"], args=[n], client=client) for n in range(1, 6)))
    assert len(replies) == 5 and max(replies) == 15  # every caller ran it
    assert int(await client.get(f"{key_prefix}:sum")) == 15
    await shared.aclose()


async def test_redis_unreachable_fails_every_caller_of_the_batch_and_opens_the_breaker():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    shared = SharedRedis(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5, connect_timeout=0.5)
    client = shared.get()
    replies = await asyncio.gather(*(client.incr("x") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(reply, REDIS_ERRORS) for reply in replies), replies
    assert BREAKER.is_open
    # Until it closes, a command fails at once without trying Redis.
    with pytest.raises(RedisConnectionError):
        await client.incr("x")
    await shared.aclose()
