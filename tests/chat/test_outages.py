"""PostgreSQL and Redis going away and coming back, seen through real daphne sockets: what
the user is told, and that nothing is lost."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chat.models import ChatSession, Message
from tests import live
from tests.faults import RedisServer, TcpProxy
from tests.live import DaphneServer, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 20


class Socket:
    def __init__(self, server: DaphneServer, sid: uuid.UUID, cookie: str):
        self.url = f"{server.ws_url}/ws/chat/{sid}/"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": server.url}

    async def __aenter__(self) -> Socket:
        self.ws = await ws_connect(self.url, additional_headers=self.headers, compression=None, proxy=None, open_timeout=TIMEOUT)
        self.ready = await self.recv()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def recv(self) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def send(self, **frame: object) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, *types: str) -> list[dict]:
        frames = []
        while True:
            frames.append(await self.recv())
            if frames[-1]["type"] in types:
                return frames


async def close_code(server: DaphneServer, sid: uuid.UUID, cookie: str) -> int:
    """How a socket opened now ends: the close code it gets before any ``ready``."""
    async with ws_connect(
        f"{server.ws_url}/ws/chat/{sid}/",
        additional_headers={"Cookie": f"sessionid={cookie}", "Origin": server.url},
        proxy=None,
        open_timeout=TIMEOUT,
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            raise AssertionError(f"expected a close, got {frame}")
        return closed.value.rcvd.code


def get(server: DaphneServer, path: str, cookie: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{server.url}{path}", headers={"Cookie": f"sessionid={cookie}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def until_not_busy(client: Socket, text: str) -> list[dict]:
    """Send ``text`` until the chat takes it (a client retries 'busy' quietly)."""
    for _ in range(100):
        await client.send(type="user_message", text=text)
        frames = await client.until("complete", "error")
        if frames[-1].get("code") != "busy":
            return frames
        await asyncio.sleep(0.2)
    raise AssertionError("the chat stayed busy")


@pytest.fixture
async def cookie(owner, key_prefix):
    return await sync_to_async(session_cookie)(owner)


@pytest.mark.postgres
async def test_postgresql_down_mid_reply_ends_the_run_with_a_retryable_error_and_the_chat_goes_on(cookie):
    real = urlsplit(live.test_database_url())
    proxy = TcpProxy((real.hostname or "127.0.0.1", real.port or 5432))
    env = {
        "DATABASE_URL": real._replace(netloc=f"{real.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}").geturl(),
        "OFFLINE_MODEL_WORD_DELAY": "0.05",
        "AGENT_STREAM_FLUSH_INTERVAL": "0.1",
        "RUN_HEARTBEAT_INTERVAL": "0.2",
        "RUN_STALE_AFTER": "1",
    }
    sid = uuid.uuid4()
    try:
        with DaphneServer(env=env) as server:
            async with Socket(server, sid, cookie) as client:
                await client.send(type="user_message", text="tell me a long story before the outage")
                for _ in range(5):
                    await client.until("text_delta")
                proxy.cut()
                # The run cannot store its reply: it ends, and says so, though it cannot
                # write that it ended.
                frames = await client.until("complete", "error")
                assert (frames[-1]["type"], frames[-1]["code"], frames[-1]["retryable"]) == ("error", "unavailable", True)
                # Meanwhile: a handshake is closed with 4503 (retry), the API answers 503.
                assert await close_code(server, sid, cookie) == 4503
                status, body = await sync_to_async(get)(server, "/api/v1/chats/", cookie)
                assert (status, body["code"]) == (503, "unavailable")

                proxy.restore()
                # The first request after it returns is served (its connection is checked).
                status, body = await sync_to_async(get)(server, "/api/v1/chats/", cookie)
                assert status == 200 and [chat["id"] for chat in body["results"]] == [str(sid)]
                # The run's end is written by its process; the chat takes the next message.
                frames = await until_not_busy(client, "are you back?")
                assert frames[-1]["type"] == "complete", frames[-1]
            async with Socket(server, sid, cookie) as again:
                assert again.ready["state"] == "idle"
        stored = [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("role", "content")]
        assert stored[0]["content"] == "tell me a long story before the outage"
        assert stored[-2]["content"] == "are you back?" and stored[-1]["role"] == "assistant"
    finally:
        proxy.close()


@pytest.mark.redis
async def test_redis_down_the_runs_own_sockets_keep_streaming_others_get_4503_and_all_is_kept(cookie):
    with RedisServer() as redis_server:
        env = {
            "REDIS_URL": redis_server.url,
            "OFFLINE_MODEL_WORD_DELAY": "0.05",
            "REDIS_RETRY_INTERVAL": "0.5",
        }
        sid = uuid.uuid4()
        with DaphneServer(env=env) as runs_it, DaphneServer(env=env) as other:
            async with Socket(runs_it, sid, cookie) as local, Socket(other, sid, cookie) as remote:
                await local.send(type="user_message", text="tell me a long story while redis goes away")
                await local.until("text_delta")
                await remote.until("text_delta")
                redis_server.stop()
                # The socket on the run's own process streams to the end.
                frames = await local.until("complete", "error")
                assert frames[-1]["type"] == "complete", frames[-1]
                # The socket on the other process is closed with 4503: reconnect later.
                with pytest.raises(ConnectionClosed) as closed:
                    await remote.until("complete")
                assert closed.value.rcvd.code == 4503
                # New sockets are refused the same way, on either process.
                assert await close_code(other, sid, cookie) == 4503
                assert await close_code(runs_it, sid, cookie) == 4503

            redis_server.start()  # empty, on the same port: every pooled connection is dead
            async with Socket(other, sid, cookie) as back:  # the first open after it returns works
                assert back.ready["state"] == "idle"
                await back.send(type="user_message", text="and now?")
                frames = await back.until("complete", "error")
                assert frames[-1]["type"] == "complete", frames[-1]
        stored = [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("role", "finished")]
        assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
        assert all(m["finished"] for m in stored)  # the reply streamed during the outage is whole
        assert (await ChatSession.objects.aget(pk=sid)).state == "idle"


@pytest.mark.redis
async def test_a_hung_redis_costs_one_timeout_per_retry_interval_not_one_per_request(cookie):
    with RedisServer() as redis_server:
        env = {"REDIS_URL": redis_server.url, "REDIS_RETRY_INTERVAL": "60"}
        with DaphneServer(env=env) as server:
            assert (await sync_to_async(get)(server, "/api/v1/chats/", cookie))[0] == 200
            before = redis_server.commands()
            redis_server.pause()
            try:
                # Each API request would read and write its throttle in Redis: 40 requests,
                # 80 commands sent into a Redis that answers nothing.
                for _ in range(40):
                    assert (await sync_to_async(get)(server, "/api/v1/chats/", cookie))[0] == 200
                # A socket opening now is told to come back (it would wait on Redis).
                assert await close_code(server, uuid.uuid4(), cookie) == 4503
            finally:
                redis_server.resume()
            # What reached Redis while it hung, now processed: the first timed-out command,
            # not one per request.
            reached = redis_server.commands() - before - 1  # less the INFO asking
            assert reached <= 2, reached
