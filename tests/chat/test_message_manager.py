"""MessageManager: what is stored, what is sent, and what one turn costs."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async

from chat.message_manager import MessageManager, current_time
from chat.storage import HybridStorage
from tests.chat.storage.conftest import CACHE_KINDS, CountingCache, make_cache
from tests.factories import new_chat, seed_history, tool_turn
from tests.queries import counting_queries

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=CACHE_KINDS)
def storage(request, key_prefix):
    return HybridStorage(cache=make_cache(request.param, max_messages=400))


async def test_extra_keys_are_stored_and_never_sent(storage, owner):
    sid = await new_chat(owner)
    async with MessageManager(sid, owner, storage, injections=()) as mm:
        await mm.add_user_message("What is 2+2?")
        await mm.add_assistant_message(tool_turn("toolu_1")[1]["content"])
        await mm.add_tool_results(
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "4",
                    "display_data": {"figure": 4},
                    "interactive_data": {"question": "?"},
                    "requires_user_input": False,
                }
            ]
        )
        sent = mm.to_api_messages()
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "4"}]

    reloaded = MessageManager(sid, owner, storage)
    await reloaded.load(token_budget=10_000)
    block = reloaded.messages[2]["content"][0]
    assert block["display_data"] == {"figure": 4}
    assert block["interactive_data"] == {"question": "?"}


async def test_injections_shape_what_is_sent_never_what_is_stored(storage, owner):
    sid = await new_chat(owner)
    now = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.timezone.utc)
    mm = MessageManager(sid, owner, storage, injections=[lambda: current_time(now=now)])
    await mm.add_user_message("hello")
    assert mm.to_api_messages() == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert mm.call_context() == [{"type": "text", "text": "<context>Current time: 2026-11-27 09:30 UTC</context>"}]
    assert mm.messages[0]["content"] == "hello"
    assert (await storage.load_recent_messages(sid))[0]["content"] == "hello"


async def test_provider_usage_replaces_the_estimated_token_count(storage, owner):
    sid = await new_chat(owner)
    mm = MessageManager(sid, owner, storage)
    user = await mm.add_user_message("x" * 400)
    assert (user["tokens"], user["tokens_estimated"]) == (100, True)
    usage = {"input_tokens": 120, "output_tokens": 7, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    reply = await mm.add_assistant_message([{"type": "text", "text": "y" * 400}], usage=usage, context=mm.context_record())
    assert (reply["tokens"], reply["tokens_estimated"], reply["usage"]) == (7, False, usage)
    assert reply["context"] == {"first_sequence": 1, "last_sequence": 1, "dropped": 0}
    assert reply["cumulative_tokens"] == 107


async def test_a_streamed_reply_is_stored_unfinished_then_completed(storage, owner):
    sid = await new_chat(owner)
    mm = MessageManager(sid, owner, storage)
    await mm.add_user_message("tell me")
    partial = await mm.add_assistant_message([{"type": "text", "text": "Once"}], finished=False)
    done = await mm.update_message(
        partial["sequence"], content=[{"type": "text", "text": "Once upon a time."}], finished=True, usage={"output_tokens": 5}
    )
    assert (done["finished"], done["tokens"], done["tokens_estimated"]) == (True, 5, False)
    assert mm.messages[-1] == done
    assert (await storage.load_recent_messages(sid))[-1] == done


async def test_the_budget_cut_moves_in_coarse_steps_across_turns(storage, owner):
    sid = await new_chat(owner)
    firsts = []
    for turn in range(40):
        mm = MessageManager(sid, owner, storage, cut_step=100)
        await mm.load(token_budget=300)
        if mm.messages:
            firsts.append(mm.messages[0]["sequence"])
            assert sum(m["tokens"] for m in mm.messages) <= 300
        await mm.add_user_message(f"question {turn} " + "q" * 30)
        await mm.add_assistant_message([{"type": "text", "text": f"answer {turn} " + "a" * 30}])
    changes = sum(1 for a, b in zip(firsts, firsts[1:]) if a != b)
    # Each turn adds ~20 tokens; an exact cut would move on nearly every turn once full.
    assert 0 < changes <= len(firsts) // 3, firsts


async def test_a_dangling_tool_use_from_a_crash_is_repaired_on_load(storage, owner):
    sid = await new_chat(owner)
    await storage.save_messages(sid, tool_turn("toolu_crash")[:2])  # crashed before the result
    mm = MessageManager(sid, owner, storage, injections=())
    await mm.load(token_budget=10_000)
    await mm.add_user_message("still there?")
    sent = mm.to_api_messages()
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[2]["content"][0]["tool_use_id"] == "toolu_crash"
    assert sent[2]["content"][0]["is_error"] is True


@pytest.mark.parametrize("history_size", [10, 10_000])
async def test_queries_and_cache_round_trips_per_turn_do_not_grow_with_history(owner, cache_kind, history_size):
    # One turn: a budget load answered by the cache, the summary it may begin with (one
    # index range, by the window's branches), then the user message and the reply, each one
    # UPDATE (sequence allocation) and one INSERT. The same at 10 and 10,000.
    counts = await _turn_costs(owner, cache_kind, history_size)
    assert counts == {"sql": 5, "cache": ["read_budget", "append", "append"]}


async def _turn_costs(owner, cache_kind, history_size):
    cache = CountingCache(make_cache(cache_kind, max_messages=400))
    storage = HybridStorage(cache=cache)
    session = await sync_to_async(seed_history)(owner, history_size)
    warm = MessageManager(session.pk, owner, storage)
    await warm.load(token_budget=2000)

    cache.calls.clear()
    async with counting_queries() as queries:
        mm = MessageManager(session.pk, owner, storage)
        await mm.load(token_budget=2000)
        await mm.add_user_message("next question")
        await mm.add_assistant_message([{"type": "text", "text": "next answer"}], usage={"output_tokens": 3})
    return {"sql": len(queries), "cache": list(cache.calls)}


@pytest.fixture(params=CACHE_KINDS)
def cache_kind(request, key_prefix):
    return request.param


@pytest.fixture
async def manager(owner):
    return MessageManager(await new_chat(owner), owner, storage=HybridStorage(cache=make_cache("local")))


async def test_what_is_sent_carries_no_cache_marks_the_provider_places_them(manager):
    await manager.add_user_message([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    [sent] = manager.to_api_messages()
    assert not any("cache_control" in block for block in sent["content"])


async def test_a_newest_turn_larger_than_the_budget_is_refused_saying_how_much_too_long(storage, owner):
    from chat.errors import ContextTooLong

    sid = await new_chat(owner)
    mm = MessageManager(sid, owner, storage, cut_step=20_000)
    await mm.add_user_message("x" * 400)  # 100 tokens
    await mm.add_assistant_message([{"type": "text", "text": "ok"}])
    await mm.add_user_message("y" * 2_000)  # 500 tokens
    with pytest.raises(ContextTooLong) as refused:
        await MessageManager(sid, owner, storage).load(token_budget=180)
    assert (refused.value.code, refused.value.turn_tokens, refused.value.over) == ("context_too_long", 500, 320)
    assert "320 tokens more than" in refused.value.message
    # At the budget's size exactly, it is sent alone (the step is far larger than the budget).
    fits = MessageManager(sid, owner, storage, cut_step=20_000)
    await fits.load(token_budget=500)
    assert [m["content"] for m in fits.messages] == ["y" * 2_000]
