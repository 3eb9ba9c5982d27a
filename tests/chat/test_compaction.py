"""Long chats: old tool results as stubs, summaries instead of the oldest turns, and a
prompt whose prefix stays the same between compactions (issue 14)."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from chat import compaction, history
from chat.agent.providers.anthropic import with_cache_breakpoint
from chat.agent.providers.offline import OfflineProvider
from chat.message_manager import MessageManager
from chat.models import ChatSession, Message, Summary
from chat.runs import turns
from chat.storage import HybridStorage, database, tree
from tests.chat.agent.conftest import collect, of_type, turn
from tests.chat.storage.conftest import CACHE_KINDS, make_cache
from tests.chat.test_history import assert_valid
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)


class Recording(OfflineProvider):
    """The offline model, remembering what each call and each summary call was sent."""

    def __init__(self):
        super().__init__(word_delay=0)
        self.calls: list[list[dict]] = []
        self.summaries: list[list[dict]] = []

    async def stream(self, *, system, messages, tools, context=()):
        self.calls.append(copy.deepcopy(messages))
        async for item in super().stream(system=system, messages=messages, tools=tools, context=context):
            yield item

    async def summarize(self, *, system, messages, max_tokens):
        self.summaries.append(copy.deepcopy(messages))
        return await super().summarize(system=system, messages=messages, max_tokens=max_tokens)


def blocks(messages):
    """A prompt as the sequence of its blocks, each with its role: what a prompt cache matches."""
    return [json.dumps([m["role"], b], sort_keys=True) for m in messages for b in m["content"]]


def starts_with_previous(previous, current):
    """``current`` begins with ``previous`` up to its cache breakpoint (its last block)."""
    marked = blocks(with_cache_breakpoint(previous))
    cached = [json.dumps([m["role"], {k: v for k, v in b.items() if k != "cache_control"}], sort_keys=True)
              for m in with_cache_breakpoint(previous) for b in m["content"]]
    assert len(marked) == len(cached)
    return blocks(current)[: len(cached)] == cached


@pytest.fixture
def local_storage(key_prefix):
    from chat.storage import HybridStorage
    from tests.chat.storage.conftest import make_cache

    return HybridStorage(cache=make_cache("local"))


@pytest.fixture
def sid(owner):
    from chat.models import ChatSession

    return ChatSession.objects.create(owner=owner).pk


def manager(sid, owner, storage, **options):
    return MessageManager(sid, owner, storage=storage, injections=(), cut_step=400, **options)


async def chat(sid, owner, storage, model, texts, *, budget):
    """One turn per text, each with a manager of its own (as runs have); every event."""
    out = []
    for text in texts:
        out += await collect(turn(manager(sid, owner, storage), model, builtin_tools(), text, token_budget=budget))
        assert out[-1]["type"] in ("complete", "awaiting_user_input"), out[-1]
    return out


def questions(n):
    # Every third turn calls a tool (a calculation), so tool pairs cross the cuts.
    return [f"calculate {i} * 3" if i % 3 == 0 else f"tell me about item {i} " + "x" * 300 for i in range(n)]


async def test_a_long_chat_is_summarised_before_the_prompt_passes_the_compaction_point(sid, owner, local_storage, settings):
    settings.CHAT_COMPACT_AT, settings.CHAT_COMPACT_KEEP = 0.8, 0.3
    model = Recording()
    events = await chat(sid, owner, local_storage, model, questions(30), budget=2_000)

    summaries = of_type(events, "summary")
    assert summaries, "a chat of ~6,000 tokens in a 2,000-token budget was never compacted"
    for sent in model.calls:
        assert_valid(sent)
        assert history.estimate_tokens([b for m in sent for b in m["content"]]) <= 2_000
    stored = await sync_to_async(list)(Summary.objects.filter(session_id=sid).order_by("created_at").values())
    assert len(stored) == len(summaries)
    first, last = stored[0], stored[-1]
    assert (first["first_sequence"], first["model"], first["previous_id"]) == (1, "offline-demo", None)
    assert last["previous_id"] == stored[-2]["id"] if len(stored) > 1 else True
    assert first["tokens"] == history.summary_tokens(first["text"])
    # The summary folds in the one before it: its first lines are the older summary's.
    if len(stored) > 1:
        assert stored[-2]["text"].splitlines()[-1] in last["text"] or len(last["text"]) >= 4 * 300
    # The newest call begins with the newest summary, then a turn the user typed.
    newest = model.calls[-1][0]["content"]
    assert newest[0]["text"].startswith(history.SUMMARY_OPEN) and last["text"] in newest[0]["text"]
    # Nothing stored was rewritten.
    assert len(await database_messages(sid)) == max(e["sequence"] for e in of_type(events, "message"))


async def database_messages(sid):
    return (await sync_to_async(database.load_recent)(sid, 10**6)).messages


async def test_the_prompt_prefix_stays_byte_identical_between_compactions(sid, owner, local_storage, settings):
    settings.CHAT_COMPACT_AT, settings.CHAT_COMPACT_KEEP = 0.8, 0.3
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 1_000
    model = Recording()
    events = await chat(sid, owner, local_storage, model, questions(40), budget=2_000)
    pairs = list(zip(model.calls, model.calls[1:]))
    hits = sum(starts_with_previous(a, b) for a, b in pairs)
    misses = len(pairs) - hits
    compactions = len(of_type(events, "summary"))
    assert compactions >= 2
    # A miss only where the summary changed or the stub line moved (a step of 400 tokens).
    assert misses <= 2 * compactions + 4, (hits, misses, compactions)


async def test_each_reply_names_the_summary_its_prompt_began_with(sid, owner, local_storage, settings):
    settings.CHAT_COMPACT_AT = 0.8
    events = await chat(sid, owner, local_storage, Recording(), questions(20), budget=2_000)
    summary = of_type(events, "summary")[0]
    replies = [m for m in await database_messages(sid) if m["role"] == "assistant" and m["context"]]
    named = [r for r in replies if r["context"].get("summary") == summary["summary_id"]]
    assert named
    record = named[0]["context"]
    assert record["summarised"] == summary["last_sequence"]
    assert record["first_sequence"] == summary["last_sequence"] + 1 and record["dropped"] == 0


async def test_old_tool_results_are_sent_as_stubs_and_kept_whole(sid, owner, local_storage):
    big = "r" * 2_000  # 500 tokens
    mm = manager(sid, owner, local_storage)
    await mm.add_user_message("fetch it")
    await mm.add_assistant_message([{"type": "tool_use", "id": "toolu_big", "name": "fetch", "input": {}}])
    await mm.add_tool_results([{"type": "tool_result", "tool_use_id": "toolu_big", "content": big}])
    await mm.add_assistant_message([{"type": "text", "text": "fetched"}])
    await local_storage.save_messages(sid, [{"role": "user", "content": "small"}, {"role": "assistant", "content": "ok"}] * 2)

    def result_sent(mm):
        return next(b for m in mm.to_api_messages() for b in m["content"] if b["type"] == "tool_result")["content"]

    within = manager(sid, owner, local_storage)
    await within.load(50_000)
    assert result_sent(within) == big  # the newest three turns: sent whole
    # Three turns later, and a step (400 tokens) of history past it: stubbed.
    await local_storage.save_messages(sid, [{"role": "user", "content": "m" * 1_200}, {"role": "assistant", "content": "ok"}] * 4)
    later = manager(sid, owner, local_storage)
    await later.load(50_000)
    assert result_sent(later).startswith("[An earlier tool result of about 500 tokens, left out")
    assert later.prompt_tokens < later.path_tokens - 400
    assert_valid(later.to_api_messages())
    stored = (await database_messages(sid))[2]["content"][0]["content"]
    assert stored == big  # storage (and so the UI) keeps it whole


async def test_a_budget_with_the_stub_line_below_the_step_stubs_nothing(sid, owner, local_storage):
    mm = manager(sid, owner, local_storage)
    await mm.add_user_message("calculate 1+1")
    await mm.load(180)
    assert mm._stub_line == 0 and mm.prompt_tokens == mm.messages[0]["tokens"]


async def test_a_question_paused_on_survives_a_compaction_and_its_answer_is_valid(sid, owner, local_storage, settings):
    settings.CHAT_COMPACT_AT, settings.CHAT_COMPACT_KEEP = 0.8, 0.3
    model = Recording()
    await chat(sid, owner, local_storage, model, questions(12), budget=2_000)
    paused = await chat(sid, owner, local_storage, model, ["choose a topic " + "y" * 600], budget=2_000)
    asked = of_type(paused, "awaiting_user_input")[0]
    answered = await collect(
        turn(manager(sid, owner, local_storage), model, builtin_tools(), tool_use_id=asked["tool_use_id"], choice="Rust", token_budget=2_000)
    )
    assert answered[-1]["type"] == "complete"
    for sent in model.calls:
        assert_valid(sent)
    # The turn that asked (its tool_use, then the answer) was never summarised away.
    last = model.calls[-1]
    uses = [b["id"] for m in last for b in m["content"] if b["type"] == "tool_use"]
    assert asked["tool_use_id"] in uses


async def test_a_summary_is_not_used_on_a_branch_that_leaves_the_messages_it_covers(sid, owner, local_storage, settings):
    settings.CHAT_COMPACT_AT, settings.CHAT_COMPACT_KEEP = 0.8, 0.3
    model = Recording()
    events = await chat(sid, owner, local_storage, model, questions(20), budget=2_000)
    summary = of_type(events, "summary")[0]
    # Edit a message the summary covers: the new branch forks before it.
    covered = [m for m in await database_messages(sid) if m["role"] == "user" and isinstance(m["content"], str)][1]
    assert covered["sequence"] <= summary["last_sequence"]
    edit = turns.Edit(message_id=uuid.UUID(covered["id"]), text="an edited question")
    begun = await turns.start_turn(owner, sid, edit, storage=local_storage, worker_id=uuid.uuid4())
    from chat import services
    from chat.agent.loop import run_turn

    mm = manager(sid, owner, local_storage)
    async with __import__("contextlib").aclosing(run_turn(mm, model, builtin_tools(), reply=begun.reply, token_budget=2_000)) as run:
        edited = [e async for e in run]
    await sync_to_async(services.end_run)(sid, begun.run_id, "idle")
    assert edited[-1]["type"] == "complete"
    sent = model.calls[-1]
    assert not sent[0]["content"][0]["text"].startswith(history.SUMMARY_OPEN)
    assert mm.context_record().get("summary") is None
    # Back on the first path, its summary is used again.
    located = await sync_to_async(tree.locate)(sid, uuid.UUID(covered["id"]))
    await sync_to_async(turns.switch_path)(owner.pk, sid, located.id)
    await local_storage.drop_cache(sid)
    back = manager(sid, owner, local_storage)
    await back.load(2_000)
    assert back.summary is not None and back.summary["branch"] == summary["branch"]


async def test_compact_on_demand_keeps_only_the_newest_turn(sid, owner, local_storage, settings):
    model = Recording()
    await chat(sid, owner, local_storage, model, ["one", "calculate 2+2", "three"], budget=100_000)
    mm = manager(sid, owner, local_storage)
    done = await collect(compaction.run_compaction(mm, model, budget=100_000))
    assert [e["type"] for e in done] == ["summary", "complete"] and done[-1]["stop_reason"] == "compacted"
    summary = done[0]
    messages = await database_messages(sid)
    newest_turn = [m for m in messages if history.is_turn_start(m)][-1]
    assert summary["last_sequence"] == newest_turn["sequence"] - 1
    assert "calculate" in summary["text"] and "The user wrote: “one”" in summary["text"]
    again = await collect(compaction.run_compaction(manager(sid, owner, local_storage), model, budget=100_000))
    assert again[-1]["stop_reason"] == "nothing_to_compact"
    # The next turn's prompt: the summary, then the newest turn.
    await chat(sid, owner, local_storage, model, ["after"], budget=100_000)
    first = model.calls[-1][0]["content"]
    assert first[0]["text"].startswith(history.SUMMARY_OPEN) and first[1]["text"] == "three"


async def test_the_offline_summary_is_a_pure_function_of_its_input():
    from chat.agent.providers.offline import summary_of

    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        {"role": "user", "content": [{"type": "text", "text": "summarise"}]},
    ]
    assert summary_of(messages, 1_000) == summary_of(copy.deepcopy(messages), 1_000)
    assert summary_of(messages, 1_000).splitlines()[1:] == ["- The user wrote: “hello”", "- The assistant wrote: “hi”"]
    assert len(summary_of(messages * 50, 300)) <= 300


async def test_a_compaction_that_fails_leaves_the_chat_as_it_was_and_the_turn_goes_on_with_the_cut(sid, owner, local_storage, settings):
    from chat.agent.providers.base import ProviderError

    class Failing(Recording):
        async def summarize(self, *, system, messages, max_tokens):
            raise ProviderError("model_overloaded", "Overloaded.", retryable=True)

    settings.CHAT_COMPACT_AT = 0.8
    model = Failing()
    events = await chat(sid, owner, local_storage, model, questions(20), budget=2_000)
    assert not of_type(events, "summary")
    assert not await Summary.objects.filter(session_id=sid).aexists()
    for sent in model.calls:
        assert_valid(sent)
        assert sum(history.estimate_tokens(m["content"]) for m in sent) <= 2_000 + 10 * len(sent)


async def test_a_summary_call_is_charged_to_the_run_in_the_usage_ledger(sid, owner, local_storage):
    from chat.models import UsageRecord
    from chat.usage.ledger import Payer

    model = Recording()
    await chat(sid, owner, local_storage, model, ["one", "two"], budget=100_000)
    run_id = uuid.uuid4()
    payer = Payer(user_id=owner.pk, session_id=sid, run_id=run_id)
    done = await collect(compaction.run_compaction(manager(sid, owner, local_storage), model, budget=100_000, payer=payer))
    summary = done[0]
    row = await UsageRecord.objects.aget(kind="summary", run_id=run_id)
    assert (row.key, row.model, row.session_id) == (f"summary:{summary['summary_id']}", "offline-demo", sid)
    assert row.output_tokens > 0


# --- the summary a turn uses, read with the chat's lock ---------------------------------


async def run_as_the_run_manager_does(storage, owner, sid, action, model):
    """One turn as ``chat.runs.manager`` runs it: the turn service, then a manager handed
    the summary the turn read with the chat's lock. Its events, and the manager."""
    from contextlib import aclosing

    from chat import services
    from chat.agent.loop import run_turn

    begun = await turns.start_turn(owner, sid, action, storage=storage, worker_id=uuid.uuid4())
    mm = MessageManager(sid, owner, storage, injections=(), path_summary=begun.path_summary)
    stream = compaction.run_compaction(mm, model) if begun.compact else run_turn(mm, model, builtin_tools(), reply=begun.reply)
    async with aclosing(stream) as run:
        done = [e async for e in run]
    await sync_to_async(services.end_run)(sid, begun.run_id, "idle")
    assert done[-1]["type"] == "complete", done[-1]
    return done, mm


@pytest.mark.parametrize("cache_kind", CACHE_KINDS)
async def test_a_compaction_by_another_process_is_used_by_the_next_turn_here_and_left_behind_by_a_switch(
    sid, owner, cache_kind, key_prefix
):
    from tests.queries import counting_queries

    # Two processes over one database (and, with Redis, one cache): each its own storage.
    here, there = HybridStorage(cache=make_cache(cache_kind)), HybridStorage(cache=make_cache(cache_kind))
    model = Recording()
    for text in ("first question", "second question", "third question"):
        await run_as_the_run_manager_does(here, owner, sid, turns.SendMessage(text), model)
    first = await Message.objects.filter(session_id=sid, sequence=1).values_list("id", flat=True).aget()
    # A second version of the first question (branch 1), then back to the first path.
    await run_as_the_run_manager_does(here, owner, sid, turns.Edit(first, "another first question"), model)
    other = await Message.objects.filter(session_id=sid, branch=1, sequence=1).values_list("id", flat=True).aget()
    await sync_to_async(turns.switch_path)(owner.pk, sid, first)
    await run_as_the_run_manager_does(here, owner, sid, turns.SendMessage("fourth question"), model)

    # The other process compacts the chat; nothing it does reaches this process's cache.
    compacted, _ = await run_as_the_run_manager_does(there, owner, sid, turns.Compact(), model)
    summary = of_type(compacted, "summary")[0]
    assert summary["branch"] == 0
    assert await here.cache.read_budget(str(sid), settings.CHAT_CONTEXT_TOKENS) is not None  # warm

    async with counting_queries() as queries:
        _, mm = await run_as_the_run_manager_does(here, owner, sid, turns.SendMessage("fifth question"), model)
    opening = model.calls[-1][0]["content"][0]["text"]
    assert opening.startswith(history.SUMMARY_OPEN) and summary["text"] in opening
    assert mm.context_record()["summary"] == summary["summary_id"]
    assert not [q for q in queries if 'FROM "chat_summary"' in q]  # it came with the chat's lock

    # The path through the other version of the first question does not go through the
    # summary's last message: a turn there, the cache warm, begins without it.
    await sync_to_async(turns.switch_path)(owner.pk, sid, other)
    assert await here.load_within_budget(sid, settings.CHAT_CONTEXT_TOKENS)  # warms the cache
    assert await here.cache.read_budget(str(sid), settings.CHAT_CONTEXT_TOKENS) is not None
    _, mm = await run_as_the_run_manager_does(here, owner, sid, turns.SendMessage("on the other path"), model)
    sent = model.calls[-1]
    assert not any(b.get("text", "").startswith(history.SUMMARY_OPEN) for m in sent for b in m["content"])
    assert sent[0]["content"][0]["text"] == "another first question"
    assert mm.summary is None and "summary" not in mm.context_record()
    assert (await ChatSession.objects.aget(pk=sid)).path_summary is None

    # And back on the first path, the summary is used again (by the other process too).
    await sync_to_async(turns.switch_path)(owner.pk, sid, first)
    assert str((await ChatSession.objects.aget(pk=sid)).path_summary) == summary["summary_id"]
    for storage in (here, there):
        await run_as_the_run_manager_does(storage, owner, sid, turns.SendMessage("back again"), model)
        assert model.calls[-1][0]["content"][0]["text"].startswith(history.SUMMARY_OPEN)


async def test_the_chat_lock_reads_the_path_summary_as_stored_and_an_edit_before_it_leaves_it(sid, owner, local_storage):
    from django.db import transaction

    from chat.storage import summaries

    def locked():
        with transaction.atomic():
            return database.lock_session(sid).summary

    model = Recording()
    await chat(sid, owner, local_storage, model, ["one", "calculate 2+2", "three"], budget=100_000)
    assert await sync_to_async(locked)() is None
    done = await collect(compaction.run_compaction(manager(sid, owner, local_storage), model, budget=100_000))
    stored = await sync_to_async(summaries.of_path)(sid)
    assert stored["id"] == done[0]["summary_id"] and stored["usage"]["output_tokens"] > 0
    assert await sync_to_async(locked)() == stored  # every field, converted as the ORM does
    # A new version of the second question: the path forks before the summary's end.
    second = await Message.objects.filter(session_id=sid, sequence=3).values_list("id", flat=True).aget()
    begun = await turns.start_turn(owner, sid, turns.Edit(second, "calculate 3+3"), storage=local_storage, worker_id=uuid.uuid4())
    assert begun.path_summary is turns.UNREAD  # the turn moved the path: the run reads it
    assert await sync_to_async(summaries.of_path)(sid) is None and await sync_to_async(locked)() is None
