"""The usage ledger: one row per model call, written with what the call produced, never
twice (retried saves, a cancel racing the save), partial usage kept on a cancel."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async

from chat.agent import titles
from chat.agent.providers.base import TitleReply, usage
from chat.agent.reply import StreamingReply
from chat.db import db_async
from chat.models import UsageRecord
from chat.storage import database
from chat.usage import ledger
from chat.usage.ledger import Payer
from tests.chat.agent.conftest import collect, stored_messages, turn
from tests.fakes.scripted import ScriptedProvider, Turn, call, say, stall
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)


def claude(*turns: Turn, titles: list | None = None) -> ScriptedProvider:
    """A scripted model priced as Claude Sonnet 4.5 ($3 in, $15 out per million tokens)."""
    model = ScriptedProvider(*turns, titles=titles)
    model.model = "claude-sonnet-4-5-20250929"
    return model


async def rows(**filters) -> list[dict]:
    return [r async for r in UsageRecord.objects.filter(**filters).order_by("created_at", "key").values()]


async def test_each_model_call_of_a_turn_writes_one_row_with_its_usage_cost_and_tool_calls(manager, session_id, owner):
    model = claude(call(("calculate", {"expression": "6*7"}), text="Let me see."), say("It is 42."))
    run_id = uuid.uuid4()
    payer = Payer(user_id=owner.pk, session_id=session_id, run_id=run_id, billed=True)
    events = await collect(turn(manager, model, builtin_tools(), "6 times 7?", payer=payer))

    assert events[-1]["type"] == "complete"
    first, second = await rows(user=owner)
    assert (first["key"], second["key"]) == (f"reply:{run_id}:1", f"reply:{run_id}:2")
    assert (first["tool_calls"], second["tool_calls"]) == (1, 0)
    for row in (first, second):
        assert (row["session_id"], row["run_id"], row["kind"], row["model"]) == (
            session_id, run_id, "reply", "claude-sonnet-4-5-20250929"
        )
        assert (row["input_tokens"], row["output_tokens"], row["billed"], row["partial"]) == (100, 10, True, False)
        assert row["cost_micros"] == 100 * 3 + 10 * 15  # dollars per million tokens = micro-dollars per token
    # The replies carry what they cost, for the UI's hover.
    replies = [m for m in await stored_messages(session_id) if m["role"] == "assistant"]
    assert [r["usage"]["cost_usd"] for r in replies] == [0.00045, 0.00045]


async def test_cache_reads_and_writes_are_priced_with_their_multipliers(manager, owner, settings):
    settings.USAGE_CACHE_READ_MULTIPLIER, settings.USAGE_CACHE_WRITE_MULTIPLIER = 0.1, 1.25
    used = usage(input_tokens=10, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=400)
    model = claude(Turn(steps=["Hi"], content=[{"type": "text", "text": "Hi"}], usage=used))
    await collect(turn(manager, model, builtin_tools(), "Hello"))

    [row] = await rows(user=owner)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (1000, 400)
    assert row["cost_micros"] == round(10 * 3 + 1000 * 3 * 0.1 + 400 * 3 * 1.25 + 20 * 15)


async def test_a_save_retried_with_a_stale_copy_counts_the_call_once(manager, session_id, owner):
    await collect(turn(manager, ScriptedProvider(say("Hello")), builtin_tools(), "Hi"))
    [_, reply] = await stored_messages(session_id)
    charge = Payer(user_id=owner.pk, session_id=session_id, run_id=uuid.uuid4()).reply(9, "claude-haiku-4-5", usage(5, 5))
    stale = {**reply, "tokens": reply["tokens"] + 1}  # the first transaction fails, the second reads the row
    update = database_sync_to_async(database.update_message)
    await update(session_id, reply["sequence"], known=stale, content=[{"type": "text", "text": "Hello!"}], charge=charge)
    await update(session_id, reply["sequence"], known=None, finished=True, charge=charge)  # saved again

    assert len(await rows(key=charge.key)) == 1


async def test_a_cancelled_reply_records_the_usage_so_far_once(manager, session_id, owner):
    gate = asyncio.Event()
    model = claude(Turn(steps=["Half ", "a ", "thought", gate], content=[], so_far=usage(input_tokens=500)))
    payer = Payer(user_id=owner.pk, session_id=session_id, run_id=uuid.uuid4())
    task = asyncio.ensure_future(collect(turn(manager, model, builtin_tools(), "Tell me", payer=payer, flush_interval=3600)))
    await model.stalled.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [row] = await rows(user=owner)
    assert (row["key"], row["partial"], row["input_tokens"]) == (ledger.reply_key(payer.run_id, 1), True, 500)
    assert row["output_tokens"] >= 3  # at least what was streamed
    assert row["cost_micros"] == 500 * 3 + row["output_tokens"] * 15
    [_, reply] = await stored_messages(session_id)
    assert reply["finished"] is False and reply["content"] == [{"type": "text", "text": "Half a thought"}]


async def test_a_call_cancelled_before_its_first_word_is_recorded_without_its_reply(manager, session_id, owner):
    gate = asyncio.Event()
    model = claude(Turn(steps=[gate], content=[], so_far=usage(input_tokens=800, cache_read_tokens=2000)))
    task = asyncio.ensure_future(collect(turn(manager, model, builtin_tools(), "Tell me")))
    await model.stalled.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [row] = await rows(user=owner)
    assert (row["partial"], row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (True, 800, 2000, 0)
    assert [m["role"] for m in await stored_messages(session_id)] == ["user"]  # the empty reply went


async def test_a_call_cancelled_before_it_reported_anything_records_nothing(manager, session_id, owner):
    gate = asyncio.Event()
    model = claude(stall(until=gate))
    task = asyncio.ensure_future(collect(turn(manager, model, builtin_tools(), "Tell me")))
    await model.stalled.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await rows(user=owner) == []


async def test_a_cancel_landing_while_the_finished_reply_is_saved_counts_the_call_once(manager, session_id, owner):
    from chat.agent.providers.base import ModelReply

    await collect(turn(manager, ScriptedProvider(say("Hi")), builtin_tools(), "Hello"))
    payer = Payer(user_id=owner.pk, session_id=session_id, run_id=uuid.uuid4())
    writing = StreamingReply(manager, {}, 3600, payer=payer, step=1, model="claude-haiku-4-5")
    await writing.start()
    from chat.agent.providers.base import TextDelta

    await writing.add(TextDelta("Partly"))
    await writing.finish(ModelReply([{"type": "text", "text": "Partly done"}], "end_turn", usage(40, 4)))
    await writing.keep_partial()  # the cancel's save, after the finished one committed

    [row] = await rows(run_id=payer.run_id)
    assert (row["partial"], row["input_tokens"], row["output_tokens"]) == (False, 40, 4)


async def test_concurrent_writes_of_one_call_store_one_row(owner, session_id):
    charge = Payer(user_id=owner.pk, session_id=session_id, run_id=uuid.uuid4()).reply(1, "claude-haiku-4-5", usage(1, 1))
    written = await asyncio.gather(*(db_async(ledger.record)(charge) for _ in range(8)))
    assert sorted(written) == [False] * 7 + [True]
    assert len(await rows(key=charge.key)) == 1


async def test_a_failed_call_records_the_usage_streamed_before_it_broke(manager, session_id, owner):
    from chat.agent.providers.base import ProviderError

    broken = Turn(
        steps=["Some ", "words", ProviderError("stream_interrupted", "Broke.", retryable=True)],
        content=[],
        so_far=usage(input_tokens=300),
    )
    events = await collect(turn(manager, claude(broken), builtin_tools(), "Hi"))
    assert events[-1]["code"] == "stream_interrupted"
    [row] = await rows(user=owner)
    assert (row["partial"], row["input_tokens"]) == (True, 300) and row["output_tokens"] >= 2


async def test_a_title_call_is_charged_with_the_title_and_an_empty_one_on_its_own(owner, session_id):
    payer = Payer(user_id=owner.pk, session_id=session_id, run_id=uuid.uuid4(), billed=True)
    model = claude(titles=[TitleReply("  ", "claude-haiku-4-5", usage(30, 1)), TitleReply("Hiking", "claude-haiku-4-5", usage(30, 2))])
    title = await titles.generate_title(session_id, "hiking?", model, payer=payer, retry_delay=0)

    assert title == "Hiking"
    first, second = await rows(kind="title")
    assert (first["key"], second["key"]) == (ledger.title_key(session_id, 1), ledger.title_key(session_id, 2))
    assert [(r["model"], r["output_tokens"], r["billed"]) for r in (first, second)] == [
        ("claude-haiku-4-5", 1, True), ("claude-haiku-4-5", 2, True)
    ]
    assert first["cost_micros"] == 30 * 1 + 1 * 5


async def test_a_failed_title_call_records_nothing(owner, session_id):
    from chat.agent.providers.base import ProviderError

    payer = Payer(user_id=owner.pk, session_id=session_id, run_id=uuid.uuid4())
    failing = ProviderError("model_overloaded", "Busy.", retryable=True)
    model = claude(titles=[failing, failing])
    assert await titles.generate_title(session_id, "hiking?", model, payer=payer, retry_delay=0) is None
    assert await rows(kind="title") == []
