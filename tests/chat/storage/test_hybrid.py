"""HybridStorage against both cache backends: DESIGN.md rules 1, 3, 4 and 5."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError

from chat.errors import ContextTooLong, NotFound
from chat.message_manager import MessageManager
from chat.models import ChatSession, Message
from chat.storage import HybridStorage, database
from tests.chat.storage.conftest import CountingCache, make_cache
from tests.factories import new_chat, text, tool_turn
from tests.queries import counting_queries

pytestmark = pytest.mark.django_db(transaction=True)


def plain(messages):
    """What a caller can observe of stored messages, for comparing two reads."""
    return [(m["sequence"], m["role"], m["content"], m["tokens"], m["cumulative_tokens"]) for m in messages]


async def save_conversation(storage, session_id, owner, count, size=40):
    for i in range(1, count + 1):
        role = "user" if i % 2 else "assistant"
        await storage.save_messages(session_id, [{"role": role, "content": text(i, size + i % 7)}])


def brute_force_budget(messages, budget):
    """The longest suffix whose tokens sum to at most ``budget``."""
    total, start = 0, len(messages)
    for index in range(len(messages) - 1, -1, -1):
        if total + messages[index]["tokens"] > budget:
            break
        total += messages[index]["tokens"]
        start = index
    return messages[start:]


async def all_messages(session_id):
    snapshot = await database_sync_to_async(database.load_recent)(session_id, 10**9)
    return snapshot.messages


async def test_save_numbers_messages_and_keeps_the_sessions_counters(storage, owner):
    sid = await new_chat(owner)
    stored = await storage.save_messages(sid, [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}])
    assert [m["sequence"] for m in stored] == [1, 2]
    assert stored[1]["cumulative_tokens"] == stored[0]["tokens"] + stored[1]["tokens"]
    assert stored[0]["tokens_estimated"] is True
    session = await ChatSession.objects.aget(pk=sid)
    assert (session.owner_id, session.message_count, session.last_sequence) == (owner.pk, 2, 2)
    assert session.total_tokens == stored[1]["cumulative_tokens"]


async def test_a_save_into_a_chat_that_does_not_exist_is_refused(storage):
    with pytest.raises(NotFound):
        await storage.save_messages(uuid.uuid4(), [{"role": "user", "content": "nowhere"}])
    assert not await Message.objects.aexists()


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "system", "content": "x"},
        {"role": "user", "content": None},
        {"role": "user", "content": [{"text": "no type"}]},
        {"role": "user", "content": [{"type": "text", "text": float("inf")}]},
    ],
)
async def test_a_bad_message_is_refused_and_nothing_is_stored(storage, owner, bad):
    sid = await new_chat(owner)
    await storage.save_messages(sid, [{"role": "user", "content": "first"}])
    before = plain(await storage.load_recent_messages(sid))
    with pytest.raises(ValueError):
        await storage.save_messages(sid, [{"role": "user", "content": "ok"}, bad])
    assert plain(await storage.load_recent_messages(sid)) == before
    assert (await ChatSession.objects.aget(pk=sid)).last_sequence == 1


async def test_a_client_id_is_stored_once_the_database_refuses_it_again(storage, owner):
    # The turn service relies on this: the unique constraint, not a read before the write,
    # decides, so two sends racing cannot both store it.
    sid = await new_chat(owner)
    first = await storage.save_messages(sid, [{"role": "user", "content": "once", "client_id": "c-1"}])
    with pytest.raises(IntegrityError):
        await storage.save_messages(sid, [{"role": "user", "content": "once", "client_id": "c-1"}])
    assert plain(await storage.load_recent_messages(sid)) == plain(first)
    assert (await ChatSession.objects.aget(pk=sid)).last_sequence == 1


async def test_budget_load_is_the_exact_longest_suffix_for_every_budget(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 30)
    everything = await all_messages(sid)
    total = everything[-1]["cumulative_tokens"]
    for budget in range(1, total + 30, 7):
        await storage.drop_cache(sid)
        cold = await storage.load_within_budget(sid, budget)
        warm = await storage.load_within_budget(sid, budget)
        # Exactly: where a history may start is the MessageManager's rule, not storage's.
        expected = brute_force_budget(everything, budget)
        assert plain(cold) == plain(expected), budget
        assert plain(warm) == plain(cold), budget


async def test_budget_boundaries_exact_fit_one_short_and_smaller_than_the_last_message(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 10)
    everything = await all_messages(sid)
    last_four = sum(m["tokens"] for m in everything[-4:])
    assert [m["sequence"] for m in await storage.load_within_budget(sid, last_four)] == [7, 8, 9, 10]
    # One token short: message 7 no longer fits.
    assert [m["sequence"] for m in await storage.load_within_budget(sid, last_four - 1)] == [8, 9, 10]
    assert await storage.load_within_budget(sid, everything[-1]["tokens"] - 1) == []
    assert len(await storage.load_within_budget(sid, 10**9)) == 10


async def test_cache_hit_and_miss_answer_budget_loads_identically_after_more_writes(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 12)
    for budget in (40, 100, 250):
        await storage.load_within_budget(sid, budget)  # warm
    await save_conversation(storage, sid, owner, 6)
    cold_storage = HybridStorage(cache=make_cache("local"))
    for budget in (40, 100, 250, 10**6):
        assert plain(await storage.load_within_budget(sid, budget)) == plain(
            await cold_storage.load_within_budget(sid, budget)
        )


async def test_budget_cut_never_splits_a_tool_pair(storage, owner):
    sid = await new_chat(owner)
    for n in range(5):
        await storage.save_messages(sid, tool_turn(f"toolu_{n}"))
    everything = await all_messages(sid)
    mm = MessageManager(sid, owner, storage, cut_step=1)  # the manager owns where a history starts
    newest_turn = everything[-1]["cumulative_tokens"] - everything[-5]["cumulative_tokens"]
    for budget in range(1, everything[-1]["cumulative_tokens"] + 1):
        if budget < newest_turn:  # the newest turn is always sent whole, or refused
            with pytest.raises(ContextTooLong):
                await mm.load(budget)
            continue
        window = await mm.load(budget)
        first = window[0]
        assert first["role"] == "user" and isinstance(first["content"], str), (budget, first)
        assert sum(m["tokens"] for m in window) <= budget


async def test_recent_load_returns_the_newest_messages_from_cache_and_database_alike(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 30)
    everything = await all_messages(sid)
    assert plain(await storage.load_recent_messages(sid, limit=10)) == plain(everything[-10:])
    assert plain(await storage.load_recent_messages(sid, limit=100)) == plain(everything)
    await storage.drop_cache(sid)
    assert plain(await storage.load_recent_messages(sid, limit=7)) == plain(everything[-7:])
    assert await storage.load_recent_messages(uuid.uuid4()) == []


async def test_writes_keep_the_cache_warm_and_current(owner, cache_kind):
    cache = CountingCache(make_cache(cache_kind))
    storage = HybridStorage(cache=cache)
    sid = await new_chat(owner)
    await storage.save_messages(sid, [{"role": "user", "content": "start"}])
    await storage.load_within_budget(sid, 10_000)  # the one miss: fills the cache
    for turn in range(10):
        cache.calls.clear()
        await storage.save_messages(sid, [{"role": "assistant", "content": f"reply {turn}"}])
        await storage.save_messages(sid, [{"role": "user", "content": f"question {turn}"}])
        window = await storage.load_within_budget(sid, 10_000)
        assert cache.calls == ["append", "append", "read_budget"]  # no fill: it was a hit
        assert plain(window) == plain(await all_messages(sid))


async def test_update_message_rewrites_it_and_shifts_later_sums_in_cache_and_database(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 6)
    await storage.load_recent_messages(sid)  # warm
    updated = await storage.update_message(sid, 4, content="x" * 400, finished=False)
    assert updated["tokens"] == 100 and updated["finished"] is False
    await storage.update_message(sid, 2, tokens=3)
    cached = await storage.load_recent_messages(sid)
    assert plain(cached) == plain(await all_messages(sid))
    sums = [m["cumulative_tokens"] for m in cached]
    assert sums == [sum(m["tokens"] for m in cached[: i + 1]) for i in range(6)]
    session = await ChatSession.objects.aget(pk=sid)
    assert session.total_tokens == sums[-1]


async def test_cache_keeps_only_the_configured_tail_and_still_answers_from_it(owner, cache_kind):
    storage = HybridStorage(cache=make_cache(cache_kind, max_messages=8))
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 4)
    await storage.load_recent_messages(sid)  # warm, complete
    await save_conversation(storage, sid, owner, 10)  # 14 messages, 8 cached
    everything = await all_messages(sid)
    assert plain(await storage.cache.read_recent(str(sid), 8)) == plain(everything[-8:])
    assert await storage.cache.read_recent(str(sid), 9) is None  # not covered: a miss
    small = sum(m["tokens"] for m in everything[-3:])
    assert plain(await storage.cache.read_budget(str(sid), small)) == plain(everything[-3:])
    assert await storage.cache.read_budget(str(sid), 10**6) is None


async def test_stale_fill_race_a_loader_that_read_before_a_write_cannot_cache_old_data(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 4)
    await storage.drop_cache(sid)

    read_done, release = asyncio.Event(), asyncio.Event()
    real_fill = storage.cache.fill

    async def slow_fill(session_id, snapshot):
        read_done.set()  # the loader has read L2 (revision 4) ...
        await release.wait()  # ... and is delayed before it fills the cache
        return await real_fill(session_id, snapshot)

    storage.cache.fill = slow_fill
    loader = asyncio.create_task(storage.load_recent_messages(sid))
    await read_done.wait()
    storage.cache.fill = real_fill
    await storage.save_messages(sid, [{"role": "user", "content": "written meanwhile"}])
    release.set()
    stale = await loader
    assert len(stale) == 4  # the loader itself saw the old state: it read first
    assert await storage.cache.read_recent(str(sid), 1) is None  # but did not cache it
    fresh = await storage.load_recent_messages(sid)
    assert fresh[-1]["content"] == "written meanwhile"
    assert plain(await storage.load_recent_messages(sid)) == plain(await all_messages(sid))


async def test_a_writer_whose_cache_update_is_delayed_does_not_lose_its_message(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 4)
    await storage.drop_cache(sid)

    committed, release = asyncio.Event(), asyncio.Event()
    real_append = storage.cache.append

    async def slow_append(session_id, revision, messages, **options):
        committed.set()  # L2 has the message; the cache has not heard of it yet
        await release.wait()
        return await real_append(session_id, revision, messages, **options)

    storage.cache.append = slow_append
    writer = asyncio.create_task(storage.save_messages(sid, [{"role": "user", "content": "late"}]))
    await committed.wait()
    storage.cache.append = real_append
    assert (await storage.load_recent_messages(sid))[-1]["content"] == "late"  # fills revision 5
    release.set()
    await writer
    assert plain(await storage.load_recent_messages(sid)) == plain(await all_messages(sid))


async def test_concurrent_writers_and_readers_never_see_stale_or_duplicate_messages(storage, owner):
    sid = await new_chat(owner)
    await storage.save_messages(sid, [{"role": "user", "content": "start"}])
    acknowledged: list[str] = []
    stale_reads = []

    async def writer(n):
        for i in range(10):
            [stored] = await storage.save_messages(sid, [{"role": "user", "content": f"w{n}-{i}"}])
            acknowledged.append(stored["content"])

    async def reader(n):
        for i in range(20):
            must_see = set(acknowledged)  # every write acknowledged before this read began
            window = await storage.load_recent_messages(sid, limit=1000)
            sequences = [m["sequence"] for m in window]
            missing = must_see - {m["content"] for m in window}
            if sequences != list(range(1, len(sequences) + 1)) or missing:
                stale_reads.append((sequences[-3:], sorted(missing)))
            if (n + i) % 4 == 0:
                await storage.drop_cache(sid)  # force refills racing the writers

    await asyncio.gather(*(writer(n) for n in range(5)), *(reader(n) for n in range(5)))
    assert stale_reads == []
    assert plain(await storage.load_recent_messages(sid, limit=1000)) == plain(await all_messages(sid))
    assert len(await all_messages(sid)) == 51


async def test_one_hundred_concurrent_cold_loads_share_one_database_query(storage, owner):
    sid = await new_chat(owner)
    await save_conversation(storage, sid, owner, 20)
    await storage.drop_cache(sid)
    async with counting_queries() as queries:
        results = await asyncio.gather(*(storage.load_within_budget(sid, 500) for _ in range(100)))
    assert len(queries) <= 2, queries
    assert all(plain(r) == plain(results[0]) for r in results)
    assert results[0]


async def test_loop_state_round_trip_and_clear(storage, owner):
    sid = await new_chat(owner)
    await storage.save_messages(sid, tool_turn("toolu_1")[:2])
    state = {
        "tool_use_id": "toolu_1",
        "tool_name": "propose_options",
        "step": 2,
        "question": "Which?",
        "options": ["a", "b"],
        "pending_results": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "ok"}],
    }
    assert await storage.load_loop_state(sid) is None
    await storage.save_loop_state(sid, state)
    loaded = await storage.load_loop_state(sid)
    assert {k: loaded[k] for k in state} == state
    assert await storage.clear_loop_state(sid) is True
    assert await storage.load_loop_state(sid) is None
    assert await storage.clear_loop_state(sid) is False
    with pytest.raises(ValueError):
        await storage.save_loop_state(sid, {"tool_use_id": "x"})
    with pytest.raises(NotFound):
        await storage.save_loop_state(uuid.uuid4(), state)
