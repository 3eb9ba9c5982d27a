"""What one socket is sent: in order, once, no gaps, bounded when the client stops reading."""

from __future__ import annotations

import json
import uuid

import pytest

from chat.ids import ChatRef
from chat.runs.eventlog import encode
from chat.runs.relay import EventRelay, TooSlow
from tests.chat.runs.conftest import make_log


async def publish(log, sid, count, start=0):
    last = (await log.append(sid, [encode({"type": "text_delta", "text": str(start + k)}) for k in range(count)])).last_id
    return [(i, encode({"type": "text_delta", "text": str(start + i - (last - count) - 1)})) for i in range(last - count + 1, last + 1)]


def ids(sent):
    return [json.loads(f).get("id") for f in sent.frames]


def resyncs(sent):
    return [(f["last_event_id"], f["log_epoch"]) for f in map(json.loads, sent.frames) if f.get("code") == "resync"]


async def relay_for(log, sid, **options):
    position = await log.position(sid)
    options = {"last_sent": position.last_id, "window": 100, "unacked_limit": 1000, **options}
    return EventRelay(sid, log, epoch=position.epoch, **options)


async def test_live_events_are_sent_once_in_order_and_gaps_are_filled_from_the_log(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    relay = await relay_for(log, sid)
    batch = await publish(log, sid, 5)
    assert ids(await relay.live(batch[:2], relay.epoch)) == [1, 2]
    assert ids(await relay.live(batch[:2], relay.epoch)) == []  # duplicates
    assert ids(await relay.live(batch[4:], relay.epoch)) == [3, 4, 5]  # 3 and 4 were lost on the way
    assert ids(await relay.live(batch[2:4], relay.epoch)) == []  # ... and arrive late


async def test_resume_replays_after_the_given_id_then_live_continues_without_gap_or_duplicate(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    await publish(log, sid, 6)
    relay = await relay_for(log, sid)
    assert ids(await relay.resume(2)) == [3, 4, 5, 6]
    more = await publish(log, sid, 2)
    assert ids(await relay.live(more, relay.epoch)) == [7, 8]


async def test_resume_from_trimmed_history_asks_the_client_to_reload(log_kind):
    log = make_log(log_kind, max_events=10)
    sid = ChatRef(1, uuid.uuid4())
    for _ in range(30):
        await publish(log, sid, 10)
    relay = await relay_for(log, sid, window=1000, unacked_limit=10_000)
    sent = await relay.resume(0)
    assert resyncs(sent) == [(300, relay.epoch)]
    assert relay.last_sent == 300


async def test_a_client_that_stops_acknowledging_is_sent_no_more_than_the_window(log_kind):
    log = make_log(log_kind, max_events=5000)
    sid = ChatRef(1, uuid.uuid4())
    relay = await relay_for(log, sid, window=50, unacked_limit=100)
    first = await publish(log, sid, 10)
    assert len((await relay.live(first, relay.epoch)).frames) == 10
    await relay.ack(10)
    total = 0
    for n in range(20):  # 2,000 more events while the client reads nothing
        total += len((await relay.live(await publish(log, sid, 100, start=n * 100), relay.epoch)).frames)
    assert total == 50
    caught_up = await relay.ack(60)  # it reads again: what waited comes from the log
    assert ids(caught_up) == list(range(61, 111))
    await relay.ack(110)
    assert len((await relay.ack(110)).frames) == 0


async def test_a_client_that_never_acknowledges_is_closed_past_the_limit(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    relay = await relay_for(log, sid, window=50, unacked_limit=100)
    await relay.live(await publish(log, sid, 100), relay.epoch)
    with pytest.raises(TooSlow):
        await relay.live(await publish(log, sid, 1), relay.epoch)


async def test_catch_up_finds_the_last_events_a_broken_subscription_lost_with_nothing_after_them(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    relay = await relay_for(log, sid)
    batch = await publish(log, sid, 5)
    assert ids(await relay.live(batch[:3], relay.epoch)) == [1, 2, 3]  # 4 and 5 never arrive live
    assert ids(await relay.catch_up()) == [4, 5]
    assert ids(await relay.catch_up()) == []  # up to date: nothing twice
    assert ids(await relay.live(batch[3:], relay.epoch)) == []  # late arrivals are duplicates


async def test_resume_past_the_end_of_the_log_asks_for_a_reload_and_live_events_still_flow(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    await publish(log, sid, 5)
    relay = await relay_for(log, sid)
    await relay.ack(5)  # acknowledging: with the window, a resume far ahead once sent nothing
    sent = await relay.resume(5 + 10_000)
    assert resyncs(sent) == [(5, relay.epoch)]
    assert ids(await relay.live(await publish(log, sid, 2), relay.epoch)) == [6, 7]


async def test_events_of_a_new_numbering_ask_for_a_reload_then_flow(log_kind):
    log = make_log(log_kind)
    sid = ChatRef(1, uuid.uuid4())
    await publish(log, sid, 50)
    relay = await relay_for(log, sid)  # it has sent 50 events
    restarted = [(1, encode({"type": "text_delta", "text": "a"})), (2, encode({"type": "text_delta", "text": "b"}))]
    sent = await relay.live(restarted, "a-new-epoch")
    assert resyncs(sent) == [(0, "a-new-epoch")]
    assert ids(sent) == [None, 1, 2]  # the reload request first, then the events
    assert ids(await relay.live([(3, encode({"type": "text_delta", "text": "c"}))], "a-new-epoch")) == [3]
