"""The chat websocket through Channels' WebsocketCommunicator: every frame type, every bad
input, auth, detached runs, idempotency, replay."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.utils import timezone

from chat import runtime
from chat.models import ChatSession, LoopState, Message, UsageRecord, Worker
from chat.routing import websocket_urlpatterns
from chat.runs import manager as run_manager
from tests.factories import seed_history
from tests.queries import counting_queries

pytestmark = pytest.mark.django_db(transaction=True)

router = URLRouter(websocket_urlpatterns)
TIMEOUT = 10


_open: list[WebsocketCommunicator] = []


@pytest.fixture
async def judging(settings, runtime):
    """A process whose beats have lasted RUN_STALE_AFTER: it may fail dead runs."""
    settings.RUN_HEARTBEAT_INTERVAL, settings.RUN_STALE_AFTER = 0.1, 1.0
    await runtime.start()
    for _ in range(200):
        if runtime.liveness.stale_cutoff() is not None:
            return runtime
        await asyncio.sleep(0.05)
    raise AssertionError("the worker never beat")


@pytest.fixture(autouse=True)
async def _isolated(key_prefix):
    """Each test's Redis keys (cache, event log) under a prefix of its own; every socket a
    test opened is closed when it ends."""
    yield
    while _open:
        communicator = _open.pop()
        try:
            await communicator.disconnect(timeout=TIMEOUT)
        except Exception:  # noqa: BLE001 - already closed by the test or the server
            pass


def opened(app, path, **options) -> WebsocketCommunicator:
    """A communicator the test's teardown will disconnect: a consumer left running when the
    event loop closes stays in the process's hub."""
    communicator = WebsocketCommunicator(app, path, **options)
    _open.append(communicator)
    return communicator


async def connect(user, sid, app=router, **scope):
    communicator = opened(app, f"/ws/chat/{sid}/")
    communicator.scope["user"] = user
    communicator.scope.update(scope)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    ready = await communicator.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "ready", ready
    return communicator, ready


async def close_on_connect(user, sid):
    """What the server sends a socket it accepts and closes at once (a refusal with a code:
    a close code only reaches an accepted socket)."""
    communicator = opened(router, f"/ws/chat/{sid}/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return await communicator.receive_output(timeout=TIMEOUT)


async def until(communicator, *types, limit=2000):
    """Frames up to and including the first of one of ``types``."""
    frames = []
    for _ in range(limit):
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        frames.append(frame)
        if frame["type"] in types:
            return frames
    raise AssertionError(f"no {types} in {len(frames)} frames")


def text_of(frames):
    return "".join(f["text"] for f in frames if f["type"] == "text_delta")


async def reply(communicator):
    """The next frame that answers this socket (no id), past any live event such as the
    chat's title, which is generated in the background and may come at any time."""
    while True:
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if "id" not in frame:
            return frame


async def send(communicator, **frame):
    await communicator.send_to(text_data=json.dumps(frame))


async def stored(sid):
    return [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("role", "content", "finished")]


async def test_a_message_streams_its_reply_with_increasing_ids_and_durable_acknowledgements(owner):
    sid = uuid.uuid4()
    communicator, ready = await connect(owner, sid)
    assert ready == {
        "type": "ready",
        "last_event_id": 0,
        "log_epoch": ready["log_epoch"],
        "model": ready["model"],
        "state": "idle",
        "pending": None,
        "run_events_after": None,
    }
    # A new chat's log has its epoch from the start (a page that missed it would resume
    # into a renumbered log without noticing).
    assert ready["log_epoch"]
    assert "offline" in ready["model"].lower()
    await send(communicator, type="user_message", text="Hello there")
    frames = await until(communicator, "complete")
    assert [f["id"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["type"] == "message" and frames[0]["role"] == "user" and frames[0]["content"] == "Hello there"
    final = [f for f in frames if f["type"] == "message" and f["role"] == "assistant"][-1]
    assert final["finished"] is True
    assert "".join(b["text"] for b in final["content"]) == text_of(frames)
    assert "Hello there" in text_of(frames)
    assert [m["role"] for m in await stored(sid)] == ["user", "assistant"]
    session = await ChatSession.objects.aget(pk=sid)
    assert (session.owner_id, session.state) == (owner.pk, "idle")
    await communicator.disconnect()


async def test_anonymous_is_closed_with_4401(owner):
    from django.contrib.auth.models import AnonymousUser

    assert await close_on_connect(AnonymousUser(), uuid.uuid4()) == {"type": "websocket.close", "code": 4401}


async def test_someone_elses_session_is_closed_with_4404_like_a_missing_one(owner, stranger):
    sid = uuid.uuid4()
    mine, _ = await connect(owner, sid)
    await send(mine, type="user_message", text="private")
    await until(mine, "complete")
    assert await close_on_connect(stranger, sid) == {"type": "websocket.close", "code": 4404}
    garbage = opened(router, "/ws/chat/not-a-uuid-at-all-not-a-uuid-at/")
    garbage.scope["user"] = stranger
    await garbage.connect(timeout=TIMEOUT)
    assert (await garbage.receive_output(timeout=TIMEOUT))["code"] == 4404


async def test_a_cross_origin_handshake_is_refused(owner, client):
    from agentsite.asgi import application

    await sync_to_async(client.force_login)(owner)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    evil = opened(
        application, f"/ws/chat/{uuid.uuid4()}/", headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)]
    )
    connected, _ = await evil.connect(timeout=TIMEOUT)
    assert not connected
    good = opened(
        application, f"/ws/chat/{uuid.uuid4()}/", headers=[(b"origin", b"http://localhost"), (b"cookie", cookie), (b"host", b"localhost")]
    )
    connected, _ = await good.connect(timeout=TIMEOUT)
    assert connected
    assert (await good.receive_json_from(timeout=TIMEOUT))["type"] == "ready"
    await good.disconnect()


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{oops", "invalid_json"),
        ("[1]", "invalid_frame"),
        (json.dumps({"type": "teleport"}), "unknown_type"),
        (json.dumps({"type": "user_message"}), "invalid_field"),
        (json.dumps({"type": "user_message", "text": ["x"]}), "invalid_field"),
        (json.dumps({"type": "user_message", "text": "x" * 70_000}), "frame_too_large"),
        (json.dumps({"type": "user_message", "text": "x" * 30_000}), "text_too_long"),
        (json.dumps({"type": "resume", "after": "soon"}), "invalid_field"),
        (json.dumps({"type": "interactive_response", "tool_use_id": "t", "choice": "A"}), "not_awaiting_input"),
        (json.dumps({"type": "cancel"}), "not_running"),
        (json.dumps({"type": "user_message", "text": "a\u0000b"}), "invalid_text"),
        ('{"type": "user_message", "text": "\\ud800"}', "invalid_text"),
        ('{"type": "user_message", "text": "ok \\udfff"}', "invalid_text"),
        (json.dumps({"type": "user_message", "text": "\u200b"}), "empty_message"),
        (json.dumps({"type": "user_message", "text": " \u200b\ufeff\u3164\n"}), "empty_message"),
        ('{"type": "user_message", "text": ' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
        (json.dumps({"type": "resume", "after": 2**63}), "invalid_field"),
        (json.dumps({"type": "resume", "after": 2**64 + 1}), "invalid_field"),
        (json.dumps({"type": "resume", "after": -1}), "invalid_field"),
        (json.dumps({"type": "resume", "after": 1.5}), "invalid_field"),
        (json.dumps({"type": "ack", "last": 2**63}), "invalid_field"),
    ],
)
async def test_bad_input_gets_a_specific_error_changes_nothing_and_the_socket_stays_usable(owner, raw, code, caplog):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="first")
    await until(communicator, "complete")
    before = await stored(sid)
    await communicator.send_to(text_data=raw)
    error = await reply(communicator)
    assert error["type"] == "error" and error["code"] == code, error
    assert error["message"] and error["retryable"] is False
    assert await stored(sid) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await send(communicator, type="user_message", text="still works")
    assert (await until(communicator, "complete"))[-1]["type"] == "complete"


async def test_deep_nesting_in_a_field_nobody_reads_is_harmless(owner, caplog):
    communicator, _ = await connect(owner, uuid.uuid4())
    await communicator.send_to(text_data='{"type": "user_message", "text": "hi", "extra": ' + "[" * 1000 + "]" * 1000 + "}")
    assert (await until(communicator, "complete", "error"))[-1]["type"] == "complete"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "user_message", "text": "a\u0000b"},
        {"type": "user_message", "text": "\u200b"},
        {"type": "user_message", "text": "x" * 30_000},
        {"type": "interactive_response", "tool_use_id": "toolu_1", "choice": "A"},
        {"type": "cancel"},
        {"type": "resume", "after": 2**63},
        {"type": "teleport"},
    ],
    ids=lambda frame: frame["type"] + (f"-{frame['text'][:3]!r}" if "text" in frame else ""),
)
async def test_no_bad_frame_creates_a_chat(owner, frame):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, **frame)
    assert (await reply(communicator))["type"] == "error"
    assert not await ChatSession.objects.filter(pk=sid).aexists()
    assert not await ChatSession.objects.filter(owner=owner).aexists()


async def test_a_binary_frame_is_refused(owner):
    communicator, _ = await connect(owner, uuid.uuid4())
    await communicator.send_to(bytes_data=b"\x00\xff")
    assert (await reply(communicator))["code"] == "binary_frame"


async def test_a_second_message_while_running_is_busy_and_not_stored(owner, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0.05
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="tell me a long story please")
    await until(communicator, "text_delta")
    await send(communicator, type="user_message", text="and another")
    frames = await until(communicator, "error")
    assert frames[-1]["code"] == "busy" and frames[-1]["retryable"] is True
    await until(communicator, "complete")
    assert [m["content"] for m in await stored(sid) if m["role"] == "user"] == ["tell me a long story please"]


async def test_resending_a_client_id_is_acknowledged_again_and_stored_once(owner):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="once only", client_id="msg-1")
    first = (await until(communicator, "complete"))[0]
    assert first["client_id"] == "msg-1"  # the sender can match its own message
    await send(communicator, type="user_message", text="once only", client_id="msg-1")
    again = await reply(communicator)
    assert again["type"] == "message" and again["sequence"] == first["sequence"] == 1
    assert [m["content"] for m in await stored(sid)].count("once only") == 1
    assert await communicator.receive_nothing(timeout=0.3)


async def test_interactive_question_wrong_answers_change_nothing_then_the_choice_resumes(owner):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="Help me choose a language")
    question = (await until(communicator, "awaiting_user_input"))[-1]
    assert question["question"] and len(question["options"]) == 3
    assert (await ChatSession.objects.aget(pk=sid)).state == "awaiting_input"
    before = await stored(sid)

    await send(communicator, type="interactive_response", tool_use_id="toolu_wrong", choice=question["options"][0])
    assert (await reply(communicator))["code"] == "unknown_question"
    await send(communicator, type="interactive_response", tool_use_id=question["tool_use_id"], choice="Not offered")
    assert (await reply(communicator))["code"] == "invalid_choice"
    assert await stored(sid) == before
    assert await LoopState.objects.filter(session_id=sid).aexists()

    # The question survives a reconnect: ``ready`` carries it.
    await communicator.disconnect()
    communicator, ready = await connect(owner, sid)
    assert ready["state"] == "awaiting_input"
    assert ready["pending"]["tool_use_id"] == question["tool_use_id"]
    assert ready["pending"]["options"] == question["options"]

    await send(communicator, type="interactive_response", tool_use_id=question["tool_use_id"], choice=question["options"][1])
    frames = await until(communicator, "complete")
    result = [f for f in frames if f["type"] == "tool_result"][0]
    assert result["content"] == f"User selected: {question['options'][1]}"
    assert question["options"][1] in text_of(frames)
    assert (await ChatSession.objects.aget(pk=sid)).state == "idle"
    assert not await LoopState.objects.filter(session_id=sid).aexists()


async def test_typing_while_a_question_is_open_answers_it_as_free_text(owner):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="give me options")
    question = (await until(communicator, "awaiting_user_input"))[-1]
    await send(communicator, type="user_message", text="Something else entirely", client_id="typed-1")
    frames = await until(communicator, "complete")
    results = [f for f in frames if f["type"] == "tool_result"]
    assert results[0]["tool_use_id"] == question["tool_use_id"]
    assert results[0]["content"] == "User replied: Something else entirely"
    # The stored answer acknowledges the typed text by its client_id ...
    [acknowledged] = [f for f in frames if f["type"] == "message" and f.get("client_id") == "typed-1"]
    assert acknowledged["content"][0]["tool_use_id"] == question["tool_use_id"]
    # ... and a resend of it (a page that missed the acknowledgement) stores nothing new.
    before = await stored(sid)
    await send(communicator, type="user_message", text="Something else entirely", client_id="typed-1")
    again = await reply(communicator)
    assert (again["type"], again["sequence"]) == ("message", acknowledged["sequence"])
    assert await stored(sid) == before


async def test_cancel_stops_the_run_and_keeps_what_was_streamed(owner, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0.05
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="tell me a long story please")
    streamed = await until(communicator, "text_delta")
    streamed += [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(2)]
    await send(communicator, type="cancel")
    frames = streamed + await until(communicator, "complete")
    assert frames[-1]["stop_reason"] == "cancelled"
    reply = (await stored(sid))[-1]
    assert reply["role"] == "assistant" and reply["finished"] is False
    # What was kept is announced as stored: the streamed text, up to the word the cancel
    # may have cut off between storing and sending it.
    kept = [f for f in frames if f["type"] == "message" and f["role"] == "assistant"][-1]
    assert (kept["content"], kept["finished"]) == (reply["content"], False)
    assert "".join(b["text"] for b in reply["content"]).startswith(text_of(frames))
    assert (await ChatSession.objects.aget(pk=sid)).state == "idle"
    await send(communicator, type="user_message", text="go on")  # the history is still valid
    assert (await until(communicator, "complete", "error"))[-1]["type"] == "complete"


async def test_a_turn_runs_the_same_sql_however_long_the_history(owner, settings):
    # The turn: lock the chat (joining the summary its active path begins with), claim it,
    # store the message with its (empty) reply (3); one history read (within the context
    # budget, from the index); the reply's completion with its usage-ledger row (2); the
    # run's release (1): the same 7 statements at any length, the cache cold. SQLite has no
    # INSERT inside a WITH: there the ledger row is an 8th statement (in the same
    # transaction, an in-process call rather than a round trip).
    settings.OFFLINE_MODEL_WORD_DELAY = 0
    counts, sessions = [], []
    for size in (2, 300, 5000):
        session = await sync_to_async(seed_history)(owner, size)
        sessions.append(session.pk)
        communicator, _ = await connect(owner, session.pk)
        async with counting_queries() as queries:
            await send(communicator, type="user_message", text="hello again")
            assert (await until(communicator, "complete", "error"))[-1]["type"] == "complete"
        counts.append(len(queries))
    expected = 7 if connection.vendor == "postgresql" else 8
    assert counts == [expected] * 3, counts
    assert await UsageRecord.objects.filter(session_id__in=sessions).acount() == 3


@pytest.mark.redis
async def test_a_turn_sends_at_most_ten_redis_commands_before_its_first_word(owner):
    from tests.queries import counting_redis_commands

    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="hello")
    await until(communicator, "complete")
    with counting_redis_commands() as commands:
        await send(communicator, type="user_message", text="hello again")
        await until(communicator, "text_delta")
        before_first_word = list(commands)
    # Rate limit, the cache extended with the stored message and its reply, the history
    # read, the turn's events and the first word in the log (each a script: one round trip).
    assert len(before_first_word) <= 10, before_first_word
    await until(communicator, "complete")


async def test_closing_the_socket_does_not_stop_the_run(owner, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0.02
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="tell me a long story please")
    await until(communicator, "text_delta")
    await communicator.disconnect()
    for _ in range(200):
        if (await ChatSession.objects.aget(pk=sid)).state == "idle":
            break
        await asyncio.sleep(0.05)
    reply = (await stored(sid))[-1]
    assert reply["role"] == "assistant" and reply["finished"] is True


async def test_reconnect_and_resume_gives_exactly_what_a_connected_client_saw(owner, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0.01
    sid = uuid.uuid4()
    watcher, _ = await connect(owner, sid)
    flaky, _ = await connect(owner, sid)
    await send(flaky, type="user_message", text="tell me a long story please")
    seen = await until(flaky, "text_delta")
    seen += [await flaky.receive_json_from(timeout=TIMEOUT) for _ in range(3)]
    await flaky.disconnect()  # the connection drops mid-reply

    everything = await until(watcher, "complete")
    flaky, ready = await connect(owner, sid)
    assert ready["last_event_id"] >= seen[-1]["id"]
    await send(flaky, type="resume", after=seen[-1]["id"])
    rest = await until(flaky, "complete")
    assert seen + rest == everything
    assert await flaky.receive_nothing(timeout=0.3)


async def test_a_page_opened_mid_run_learns_where_the_run_began(owner, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0.05
    sid = uuid.uuid4()
    first, _ = await connect(owner, sid)
    await send(first, type="user_message", text="hello")
    earlier = await until(first, "complete")
    await send(first, type="user_message", text="tell me a long story please")
    await until(first, "text_delta")
    late, ready = await connect(owner, sid)
    assert ready["state"] == "running"
    assert ready["run_events_after"] == earlier[-1]["id"]
    await send(late, type="resume", after=ready["run_events_after"])
    frames = await until(late, "complete")
    # Live events may come before the replay; the replay starts at the run's first event.
    start = next(i for i, f in enumerate(frames) if f["id"] == ready["run_events_after"] + 1)
    replayed = frames[start:]
    assert replayed[0]["type"] == "message" and replayed[0]["content"] == "tell me a long story please"
    assert [f["id"] for f in replayed] == list(range(replayed[0]["id"], replayed[-1]["id"] + 1))
    reply = [f for f in replayed if f["type"] == "message" and f["role"] == "assistant"][-1]
    assert "".join(b["text"] for b in reply["content"]) == text_of(replayed)


async def test_too_many_messages_are_rate_limited(owner, settings):
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 2
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    for text in ("one", "two"):
        await send(communicator, type="user_message", text=text)
        await until(communicator, "complete")
    await send(communicator, type="user_message", text="three")
    error = await reply(communicator)
    assert (error["code"], error["retryable"]) == ("rate_limited", True)
    assert "three" not in [m["content"] for m in await stored(sid)]


async def died_mid_run(sid):
    """What a process killed mid-run leaves behind: the claim, a worker that stopped
    beating, and the reply stored unfinished."""
    dead = await Worker.objects.acreate(host="gone", pid=1, beat_at=timezone.now() - dt.timedelta(minutes=5))
    await ChatSession.objects.filter(pk=sid).aupdate(state="running", run_id=uuid.uuid4(), run_worker=dead.pk)
    await Message.objects.filter(session_id=sid, role="assistant").aupdate(finished=False)


async def test_a_run_whose_process_died_is_marked_failed_on_connect_and_the_user_can_go_on(owner, judging):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="hello")
    await until(communicator, "complete")
    await communicator.disconnect()
    await died_mid_run(sid)
    communicator, ready = await connect(owner, sid)
    assert ready["state"] == "failed"
    error = await communicator.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"], error["retryable"]) == ("error", "run_interrupted", True)
    await send(communicator, type="user_message", text="are you back?")
    assert (await until(communicator, "complete"))[-1]["type"] == "complete"


async def test_a_message_on_a_chat_whose_run_died_is_answered_at_once_not_busy(owner, judging):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="hello")
    await until(communicator, "complete")
    await died_mid_run(sid)  # while this socket stays open: no connect finds it
    await send(communicator, type="user_message", text="are you still there?")
    frames = await until(communicator, "complete")
    interrupted = [f for f in frames if f.get("code") == "run_interrupted"]
    assert interrupted and frames.index(interrupted[0]) == 0  # told first, then answered
    assert frames[1]["type"] == "message" and frames[1]["content"] == "are you still there?"
    assert frames[-1]["type"] == "complete"
    assert not [f for f in frames if f.get("code") == "busy"]


async def test_a_run_on_a_live_process_is_not_failed_however_long_it_runs(owner, judging):
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="hello")
    await until(communicator, "complete")
    alive = await Worker.objects.acreate(host="busy", pid=2, beat_at=timezone.now() + dt.timedelta(minutes=5))
    await ChatSession.objects.filter(pk=sid).aupdate(state="running", run_id=uuid.uuid4(), run_worker=alive.pk)
    await send(communicator, type="user_message", text="hurry up")
    assert (await reply(communicator))["code"] == "busy"
    assert await runtime.get().runs.recover() == []
    assert (await ChatSession.objects.aget(pk=sid)).state == "running"


async def test_an_exception_in_a_handler_is_reported_and_the_socket_stays_usable(owner, monkeypatch):
    communicator, _ = await connect(owner, uuid.uuid4())

    async def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(run_manager.RunManager, "start_turn", broken)
    await send(communicator, type="user_message", text="boom")
    assert (await reply(communicator))["code"] == "internal_error"
    monkeypatch.undo()
    await send(communicator, type="user_message", text="fine")
    assert (await until(communicator, "complete"))[-1]["type"] == "complete"


async def test_every_socket_on_the_session_receives_the_events(owner):
    sid = uuid.uuid4()
    one, _ = await connect(owner, sid)
    two, _ = await connect(owner, sid)
    await send(one, type="user_message", text="for both of you")
    assert await until(one, "complete") == await until(two, "complete")


async def test_a_database_outage_answers_unavailable_and_stores_nothing(owner, monkeypatch):
    from django.db import OperationalError

    from chat.runs import turns

    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="before")
    await until(communicator, "complete")

    def down(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(turns, "_claim_and_store", down)
    await send(communicator, type="user_message", text="during the outage")
    error = await reply(communicator)
    assert (error["code"], error["retryable"]) == ("unavailable", True)
    assert [m["content"] for m in await stored(sid) if m["role"] == "user"] == ["before"]
    monkeypatch.undo()
    await send(communicator, type="user_message", text="after")  # the same socket, once it is back
    assert (await until(communicator, "complete"))[-1]["type"] == "complete"


async def test_a_database_outage_when_opening_a_socket_closes_it_with_4503(owner, monkeypatch):
    from django.db import OperationalError

    from chat import services

    def down(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(services, "socket_state", down)
    assert await close_on_connect(owner, uuid.uuid4()) == {"type": "websocket.close", "code": 4503}


@pytest.mark.redis
async def test_redis_unreachable_closes_a_new_socket_with_4503_and_the_chat_is_intact_once_it_is_back(owner, settings):
    from chat import runtime
    from chat.redis_client import BREAKER
    from tests.live import free_port

    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="kept")
    await until(communicator, "complete")
    await communicator.disconnect()

    working = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    runtime.install(runtime.Runtime())
    assert await close_on_connect(owner, sid) == {"type": "websocket.close", "code": 4503}

    settings.REDIS_URL = working
    BREAKER.reset()
    runtime.get().liveness.stop()
    runtime.install(runtime.Runtime())
    communicator, ready = await connect(owner, sid)
    assert ready["state"] == "idle"
    assert [m["content"] for m in await stored(sid) if m["role"] == "user"] == ["kept"]


async def ids_by_text(sid):
    found = {}
    async for m in Message.objects.filter(session_id=sid).values("id", "content"):
        content = m["content"]
        found[content if isinstance(content, str) else "".join(b.get("text", "") for b in content)] = str(m["id"])
    return found


async def test_an_edit_regeneration_and_switch_reach_every_socket_of_the_chat_as_path_events(owner):
    sid = uuid.uuid4()
    mine, _ = await connect(owner, sid)
    other, _ = await connect(owner, sid)  # the same chat in another tab
    await send(mine, type="user_message", text="Hello there")
    await until(mine, "complete")
    await until(other, "complete")
    original = (await ids_by_text(sid))["Hello there"]

    await send(mine, type="edit", message_id=original, text="Hello again")
    for socket in (mine, other):
        # (The chat's title, generated in the background, may come between any two frames.)
        frames = [f for f in await until(socket, "complete") if f["type"] != "title"]
        path, question = frames[0], frames[1]
        assert path == {"type": "path", "sequence": 1, "id": path["id"]}
        assert (question["type"], question["role"], question["content"]) == ("message", "user", "Hello again")
        assert question["message_id"] != original
        assert "Hello again" in text_of(frames)
    # Both versions are kept; the path shows the new one and its reply.
    assert sorted(m["content"] for m in await stored(sid) if m["role"] == "user") == ["Hello again", "Hello there"]

    reply_id = [m async for m in Message.objects.filter(session_id=sid, branch=1, role="assistant").values_list("id", flat=True)][0]
    await send(mine, type="regenerate", message_id=str(reply_id))
    frames = [f for f in await until(mine, "complete") if f["type"] != "title"]
    assert frames[0]["type"] == "path" and frames[0]["sequence"] == 2
    await until(other, "complete")
    assert await Message.objects.filter(session_id=sid, role="assistant").acount() == 3

    await send(other, type="switch", message_id=original)
    for socket in (mine, other):
        event = (await until(socket, "path"))[-1]
        assert event["sequence"] == 1
    session = await ChatSession.objects.aget(pk=sid)
    assert (session.active_branch, session.branch_count) == (0, 2)

    # What may not be edited is refused on the socket that asked, and nothing changes.
    shown_reply = await Message.objects.filter(session_id=sid, branch=0, role="assistant").values_list("id", flat=True).aget()
    await send(mine, type="edit", message_id=str(shown_reply), text="not mine to edit")
    refused = await reply(mine)
    assert (refused["type"], refused["code"]) == ("error", "not_editable")
    assert await Message.objects.filter(session_id=sid).acount() == 5


async def test_a_compact_frame_summarises_the_chat_for_every_socket_and_is_refused_while_busy(owner, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    for text in ("hello", "calculate 1 + 2", "thanks"):
        await send(communicator, type="user_message", text=text)
        await until(communicator, "complete")
    await send(communicator, type="compact")
    frames = await until(communicator, "complete", "error")
    [summary] = [f for f in frames if f["type"] == "summary"]
    assert (frames[-1]["type"], frames[-1]["stop_reason"]) == ("complete", "compacted")
    assert summary["first_sequence"] == 1 and "The user wrote: “hello”" in summary["text"]
    assert isinstance(summary["id"], int)  # an event of the chat's log, replayed on resume
    await ChatSession.objects.filter(pk=sid).aupdate(state="running")
    await send(communicator, type="compact")
    refused = await communicator.receive_json_from(timeout=TIMEOUT)
    assert (refused["type"], refused["code"]) == ("error", "busy")


async def test_a_process_declared_dead_stops_the_runs_whose_claims_were_failed_and_keeps_the_others(owner, settings):
    """Its worker row was removed (another process's verdict, or a cleanup): only the runs
    whose claims that process failed stop; a run whose claim still stands goes on."""
    settings.OFFLINE_MODEL_WORD_DELAY = 0.05
    kept, failed = uuid.uuid4(), uuid.uuid4()
    sockets = {}
    for sid in (kept, failed):
        sockets[sid], _ = await connect(owner, sid)
        await send(sockets[sid], type="user_message", text="tell me a long story please")
        await until(sockets[sid], "text_delta")
    await ChatSession.objects.filter(pk=failed).aupdate(state=ChatSession.State.FAILED, run_id=None, run_worker=None)
    manager = runtime.get().runs
    manager._declared_dead()  # what the liveness thread calls when its row is gone
    for _ in range(250):
        if failed not in manager._runs:
            break
        await asyncio.sleep(0.02)
    assert failed not in manager._runs
    assert kept in manager._runs  # still streaming
    await until(sockets[kept], "complete")
    reply = [m for m in await stored(kept) if m["role"] == "assistant"][-1]
    assert reply["finished"] is True
    assert (await ChatSession.objects.aget(pk=kept)).state == ChatSession.State.IDLE
    assert (await ChatSession.objects.aget(pk=failed)).state == ChatSession.State.FAILED


async def test_a_socket_opened_during_a_compaction_sees_it_going_on_not_the_previous_run(owner, settings, monkeypatch):
    settings.OFFLINE_MODEL_WORD_DELAY = 0
    sid = uuid.uuid4()
    first, _ = await connect(owner, sid)
    for text in ("hello", "calculate 1 + 2", "thanks"):
        await send(first, type="user_message", text=text)
        previous = await until(first, "complete")
    provider = runtime.get().provider
    summarize, release = provider.summarize, asyncio.Event()

    async def held(**kwargs):
        await release.wait()
        return await summarize(**kwargs)

    monkeypatch.setattr(provider, "summarize", held)
    await send(first, type="compact")
    [started] = await until(first, "compacting")
    assert started == {"type": "compacting", "id": previous[-1]["id"] + 1}

    late, ready = await connect(owner, sid)
    assert ready["state"] == "running"
    # The run began with its `compacting` event: replayed from there, not from the last reply's run.
    assert ready["run_events_after"] == previous[-1]["id"]
    await send(late, type="resume", after=ready["run_events_after"])
    assert await late.receive_json_from(timeout=TIMEOUT) == started
    assert await late.receive_nothing(timeout=0.2)
    release.set()
    for socket in (first, late):
        frames = await until(socket, "complete", "error")
        assert [f["type"] for f in frames] == ["summary", "complete"]
        assert frames[-1]["stop_reason"] == "compacted"
