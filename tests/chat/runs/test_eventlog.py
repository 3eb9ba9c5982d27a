"""The event log numbers events per session and replays them, in both backends."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from chat.ids import ChatRef
from chat.runs.eventlog import Position, encode, frame
from tests.chat.runs.conftest import make_log


def payloads(*texts):
    return [encode({"type": "text_delta", "text": t}) for t in texts]


async def test_ids_increase_per_session_and_replay_returns_what_followed(log_kind):
    log = make_log(log_kind)
    a, b = ChatRef(1, uuid.uuid4()), ChatRef(1, uuid.uuid4())
    assert await log.last_id(a) == 0
    assert (await log.append(a, payloads("x", "y"))).last_id == 2
    assert (await log.append(b, payloads("other"))).last_id == 1
    assert (await log.append(a, payloads("z"))).last_id == 3
    replay = await log.read_after(a, 1)
    assert [(i, json.loads(p)["text"]) for i, p in replay.events] == [(2, "y"), (3, "z")]
    assert (replay.last_id, replay.gap) == (3, False)
    assert (await log.read_after(a, 3)).events == []


async def test_concurrent_appends_get_distinct_consecutive_ids(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    lasts = await asyncio.gather(*(log.append(sid, payloads(f"{n}a", f"{n}b")) for n in range(50)))
    assert sorted(a.last_id for a in lasts) == list(range(2, 101, 2))
    replay = await log.read_after(sid, 0, limit=1000)
    assert [i for i, _ in replay.events] == list(range(1, 101))


async def test_trimmed_or_unknown_history_is_reported_as_a_gap(log_kind):
    log = make_log(log_kind, max_events=10)
    sid = ChatRef(1, uuid.uuid4())
    for n in range(30):  # Redis trims approximately (~): well past the cap
        await log.append(sid, payloads(*[f"{n}-{k}" for k in range(10)]))
    assert (await log.read_after(sid, 0)).gap is True
    assert (await log.read_after(sid, 10**6)).gap is True  # ids this log never gave out
    newest = await log.read_after(sid, 299)
    assert newest.gap is False and [i for i, _ in newest.events] == [300]


def test_frames_put_the_id_first_and_nan_never_reaches_the_browser():
    payload = encode({"type": "display", "data": {"x": float("nan"), "y": float("inf")}})
    text = frame(7, payload)
    assert json.loads(text) == {"id": 7, "type": "display", "data": {"x": None, "y": None}}


def test_an_event_too_big_for_one_websocket_message_goes_out_without_its_big_fields():
    huge = {"type": "message", "sequence": 4, "role": "assistant", "finished": True, "content": "x" * 2_000_000}
    payload = encode(huge)
    assert len(payload) < 2000
    assert json.loads(payload) == {"type": "message", "sequence": 4, "role": "assistant", "finished": True, "omitted": ["content"]}


async def test_the_epoch_stays_while_the_numbering_lasts_and_changes_when_it_starts_again(log_kind):
    log = make_log(log_kind, ttl=1)
    sid = ChatRef(1, uuid.uuid4())
    empty = await log.position(sid)
    assert empty.last_id == 0 and empty.epoch  # a log with no events has its epoch already
    appended = await log.append(sid, payloads("a"))
    assert appended.epoch == empty.epoch
    await log.append(sid, payloads("b"))
    assert await log.position(sid) == Position(2, empty.epoch, 0)
    await asyncio.sleep(2.1)  # the log expires: numbering starts again, under a new epoch
    again = await log.append(sid, payloads("c"))
    assert again.last_id == 1 and again.epoch != empty.epoch
    assert (await log.position(sid)).epoch == again.epoch


async def test_ids_handed_out_while_the_log_was_away_are_never_given_again(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    await log.append(sid, payloads("a", "b"))
    # A process numbered 3..5 itself while the log was unreachable: the next append
    # starts above them.
    assert (await log.append(sid, payloads("c"), floor=5)).last_id == 6
    assert (await log.append(sid, payloads("d"), floor=2)).last_id == 7  # a lower floor changes nothing
    replay = await log.read_after(sid, 5)
    assert [(i, json.loads(p)["text"]) for i, p in replay.events] == [(6, "c"), (7, "d")]


async def test_a_run_start_is_where_a_page_opened_mid_run_replays_from(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    await log.append(sid, payloads("earlier", "events"))
    await log.append(sid, payloads("the run's first"), run_start=True)
    await log.append(sid, payloads("and more"))
    assert (await log.position(sid)).run_start == 2


@pytest.mark.redis
async def test_an_append_that_timed_out_after_landing_is_retried_without_adding_it_twice(key_prefix, monkeypatch):
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from chat.runs import eventlog

    monkeypatch.setattr(eventlog, "APPEND_RETRY_PAUSES", (0.01,))
    log = make_log("redis")
    sid = ChatRef(1, uuid.uuid4())
    await log.append(sid, payloads("first"))
    script = log._script(log.redis.get(), eventlog._LUA_APPEND)
    calls = []

    async def lands_then_times_out(**kwargs):
        calls.append(kwargs)
        result = await script(**kwargs)
        if len(calls) == 1:
            raise RedisTimeoutError("Timeout reading from socket")  # the reply was lost
        return result

    log._script = lambda client, source: lands_then_times_out
    assert (await log.append(sid, payloads("a", "b"))).last_id == 3
    assert len(calls) == 2
    replay = await log.read_after(sid, 0)
    assert [json.loads(p)["text"] for _, p in replay.events] == ["first", "a", "b"]


@pytest.mark.redis
async def test_an_append_that_keeps_timing_out_raises_after_its_retries(key_prefix, monkeypatch):
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from chat.runs import eventlog

    monkeypatch.setattr(eventlog, "APPEND_RETRY_PAUSES", (0.01, 0.01))
    log = make_log("redis")
    sid = ChatRef(1, uuid.uuid4())
    await log.append(sid, payloads("first"))
    attempts = []

    async def times_out(**kwargs):
        attempts.append(kwargs)
        raise RedisTimeoutError("Timeout connecting to server")

    log._script = lambda client, source: times_out
    with pytest.raises(RedisTimeoutError):
        await log.append(sid, payloads("lost"))
    assert len(attempts) == 3
    log._script = type(log)._script.__get__(log)
    assert (await log.position(sid)).last_id == 1  # nothing was added
