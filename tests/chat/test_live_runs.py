"""Runs on real daphne processes: fan-out across processes, a process killed mid-run, and a
client that stops reading."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect as ws_connect

from chat.models import ChatSession, Message
from tests.live import DaphneServer, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 20


@pytest.fixture
async def cookie(owner, key_prefix):
    return await sync_to_async(session_cookie)(owner)


class Client:
    """A websocket client of the chat protocol that records every frame."""

    def __init__(self, server: DaphneServer, session_id: uuid.UUID, cookie: str, *, ack: bool = True, **options):
        self.ack = ack
        self.url = f"{server.ws_url}/ws/chat/{session_id}/"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": server.url}
        self.options = {"compression": None, "proxy": None, **options}
        self.frames: list[dict] = []

    async def __aenter__(self) -> Client:
        self.ws = await ws_connect(self.url, additional_headers=self.headers, **self.options)
        self.ready = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        assert self.ready["type"] == "ready", self.ready
        if self.ack:  # opt in to flow control before anything streams
            await self.send(type="ack", last=self.ready["last_event_id"])
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def send(self, **frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, *types: str) -> list[dict]:
        start = len(self.frames)
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            self.frames.append(frame)
            if self.ack and "id" in frame:
                await self.send(type="ack", last=frame["id"])
            if frame["type"] in types:
                return self.frames[start:]


def text_of(frames):
    return "".join(f["text"] for f in frames if f["type"] == "text_delta")


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_processes_one_session_stream_to_both_and_replay_from_the_shared_log(cookie):
    sid = uuid.uuid4()
    env = {"OFFLINE_MODEL_WORD_DELAY": "0.01"}
    with DaphneServer(env=env) as one, DaphneServer(env=env) as two:
        async with Client(one, sid, cookie) as left:
            async with Client(two, sid, cookie) as right:
                await left.send(type="user_message", text="tell me a long story about two servers")
                first_left = await left.until("complete")
                assert await right.until("complete") == first_left  # sent on one, streamed by both
                assert [f["id"] for f in first_left] == list(range(1, len(first_left) + 1))

                await left.send(type="user_message", text="and another long story please")
                right_part = await right.until("text_delta")  # then its connection drops
            second_left = await left.until("complete")
        # It comes back on the other process, which replays from the shared log.
        async with Client(one, sid, cookie) as back:
            await back.send(type="resume", after=right_part[-1]["id"])
            replayed = await back.until("complete")
        assert right_part + replayed == second_left


async def test_a_run_killed_with_its_process_is_marked_failed_and_the_user_can_go_on(cookie, owner):
    sid = uuid.uuid4()
    env = {
        "OFFLINE_MODEL_WORD_DELAY": "0.05",
        "AGENT_STREAM_FLUSH_INTERVAL": "0.1",
        "RUN_HEARTBEAT_INTERVAL": "0.2",
        "RUN_STALE_AFTER": "1",
    }
    server = DaphneServer(env=env).start()
    try:
        async with Client(server, sid, cookie) as client:
            await client.send(type="user_message", text="tell me a long story before the crash")
            await client.until("text_delta")
            for _ in range(8):
                await client.until("text_delta")
            server.kill()  # SIGKILL: no cleanup of any kind runs in that process
        partial = await Message.objects.filter(session_id=sid, role="assistant").alast()
        assert partial.finished is False
        assert (await ChatSession.objects.aget(pk=sid)).state == "running"

        server.start()  # the replacement process, same port
        await asyncio.sleep(1.5)  # past RUN_STALE_AFTER
        async with Client(server, sid, cookie) as client:
            assert client.ready["state"] == "failed"
            if client.ready["last_event_id"]:
                # The new process's sweep found the run dead before this socket did: the
                # notice is the newest event of the log, for a page that resumes.
                await client.send(type="resume", after=client.ready["last_event_id"] - 1)
            notice = await client.until("error")
            assert (notice[-1]["code"], notice[-1]["retryable"]) == ("run_interrupted", True)
            await client.send(type="user_message", text="are you back?")
            frames = await client.until("complete", "error")
            assert frames[-1]["type"] == "complete", frames[-1]
        kept = await Message.objects.aget(pk=partial.pk)
        assert kept.finished is False and kept.content == partial.content  # kept, still marked
        assert (await ChatSession.objects.aget(pk=sid)).state == "idle"
    finally:
        server.stop()


async def test_a_client_that_stops_reading_is_sent_no_more_than_its_window_and_others_keep_streaming(cookie):
    """daphne buffers, without limit, whatever the application sends to a client that does
    not read. What the server queued for the stalled client is exactly what that client
    can still read once it resumes reading: it must be its window, not the stream."""
    window = 100
    env = {
        "AGENT_PROVIDER": "tests.fakes.firehose.FirehoseProvider",
        "WS_ACK_WINDOW": str(window),
        "WS_UNACKED_LIMIT": "50000",
    }
    sid = uuid.uuid4()
    with DaphneServer(env=env) as server:
        async with Client(server, sid, cookie, max_size=None, max_queue=1) as stalled:
            await stalled.send(type="user_message", text="firehose 10000 2000")  # 20 MB of deltas
            await stalled.until("text_delta")  # acknowledges what it read, then reads no more
            async with Client(server, uuid.uuid4(), cookie) as other:
                await other.send(type="user_message", text="firehose 3000 10")
                frames = await other.until("complete")
                assert len([f for f in frames if f["type"] == "text_delta"]) == 3000
            deadline = time.monotonic() + 120
            while (await ChatSession.objects.aget(pk=sid)).state == "running":
                assert time.monotonic() < deadline, "the stalled client's run never finished"
                await asyncio.sleep(0.2)
            queued = 0
            while True:
                try:
                    await asyncio.wait_for(stalled.ws.recv(), 2)
                except TimeoutError:
                    break
                queued += 1
        assert queued <= window, f"{queued} frames were queued for a client that stopped reading"


async def test_a_client_that_never_acknowledges_is_closed_with_4408(cookie):
    env = {"AGENT_PROVIDER": "tests.fakes.firehose.FirehoseProvider", "WS_UNACKED_LIMIT": "1000"}
    with DaphneServer(env=env) as server:
        async with Client(server, uuid.uuid4(), cookie, ack=False) as client:
            await client.send(type="user_message", text="firehose 3000 10")
            with pytest.raises(Exception) as closed:
                while True:
                    await asyncio.wait_for(client.ws.recv(), TIMEOUT)  # reads, never acks
            assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 4408


async def test_a_client_that_goes_away_mid_reply_leaves_the_run_finishing_and_no_error_logged(cookie):
    sid = uuid.uuid4()
    env = {"AGENT_PROVIDER": "tests.fakes.firehose.FirehoseProvider", "WS_UNACKED_LIMIT": "1000000"}
    with DaphneServer(env=env) as server:
        for _ in range(3):
            async with Client(server, sid, cookie, ack=False) as client:
                await client.send(type="user_message", text="firehose 20000 8")
                await client.until("text_delta")
                client.ws.transport.abort()  # gone, mid-stream, without a closing handshake
            deadline = time.monotonic() + 60
            while (await ChatSession.objects.aget(pk=sid)).state == "running":
                assert time.monotonic() < deadline, "the run never finished"
                await asyncio.sleep(0.1)
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
