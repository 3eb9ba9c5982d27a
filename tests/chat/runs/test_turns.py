"""The turn service: every rule about whether a user action starts a run, decided once, in
one transaction; a refusal stores nothing and creates no chat."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async

from chat.errors import NotFound, UserError
from chat.models import ChatSession, LoopState, Message
from chat.runs import turns
from chat.storage import HybridStorage
from tests.chat.storage.conftest import make_cache
from tests.factories import new_chat
from tests.queries import counting_queries

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()


@pytest.fixture
def storage(key_prefix):
    return HybridStorage(cache=make_cache("local"))


async def start(storage, user, sid, action):
    return await turns.start_turn(user, sid, action, storage=storage, worker_id=WORKER)


EMPTY = [{"type": "text", "text": ""}]


async def messages(sid):
    return [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("role", "content", "client_id")]


async def contents(sid):
    return [m["content"] for m in await messages(sid)]


async def test_a_first_message_creates_the_chat_for_its_sender_stores_it_and_claims_it(storage, owner):
    sid = uuid.uuid4()
    turn = await start(storage, owner, sid, turns.SendMessage("hello", "c-1"))

    assert isinstance(turn, turns.Turn)
    assert (turn.chat.owner_id, turn.chat.session_id, turn.step, turn.title_from) == (owner.pk, sid, 0, "hello")
    [ack] = turn.events
    assert (ack["type"], ack["sequence"], ack["content"], ack["client_id"]) == ("message", 1, "hello", "c-1")
    # With it, the reply the model's first call writes into: its first word needs no write.
    assert (turn.reply["sequence"], turn.reply["role"], turn.reply["content"], turn.reply["finished"]) == (
        2, "assistant", EMPTY, False
    )
    session = await ChatSession.objects.aget(pk=sid)
    assert (session.owner_id, session.state, session.run_id, session.last_sequence) == (owner.pk, "running", turn.run_id, 2)
    # The writer warmed the cache: the loop's first history read costs no query.
    assert [m["content"] for m in await storage.cache.read_recent(str(sid), 10)] == ["hello", EMPTY]


async def test_a_later_message_costs_three_statements_and_has_no_title_to_write(storage, owner):
    sid = await new_chat(owner)
    await storage.save_messages(sid, [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])
    async with counting_queries() as queries:
        turn = await start(storage, owner, sid, turns.SendMessage("three", "c-3"))
    assert len(queries) == 3, queries  # lock the chat; claim it and allocate; insert the message and its reply
    assert turn.title_from is None and turn.events[0]["sequence"] == 3 and turn.reply["sequence"] == 4


async def test_someone_elses_chat_is_not_found_and_nothing_changes(storage, owner, stranger):
    sid = await new_chat(owner)
    with pytest.raises(NotFound):
        await start(storage, stranger, sid, turns.SendMessage("let me in"))
    assert await messages(sid) == []
    assert (await ChatSession.objects.aget(pk=sid)).state == "idle"


async def test_a_second_action_while_a_run_goes_on_is_busy(storage, owner):
    sid = uuid.uuid4()
    await start(storage, owner, sid, turns.SendMessage("first"))
    with pytest.raises(UserError) as busy:
        await start(storage, owner, sid, turns.SendMessage("second"))
    assert busy.value.code == "busy"
    assert await contents(sid) == ["first", EMPTY]


@pytest.mark.parametrize("action", [turns.Choose("toolu_1", "A")], ids=["choose"])
async def test_an_action_refused_on_a_new_id_creates_no_chat(storage, owner, action):
    sid = uuid.uuid4()
    with pytest.raises(UserError) as refused:
        await start(storage, owner, sid, action)
    assert refused.value.code == "not_awaiting_input"
    assert not await ChatSession.objects.filter(pk=sid).aexists()


async def test_a_resent_client_id_is_acknowledged_with_what_is_stored_and_stored_once(storage, owner):
    sid = uuid.uuid4()
    first = await start(storage, owner, sid, turns.SendMessage("once", "c-1"))
    await sync_to_async(ChatSession.objects.filter(pk=sid).update)(state="idle", run_id=None)
    await storage.update_message(sid, 2, content="answered", finished=True)

    again = await start(storage, owner, sid, turns.SendMessage("once", "c-1"))
    assert again == turns.Acknowledged(first.events[0])
    assert await contents(sid) == ["once", "answered"]
    assert (await ChatSession.objects.aget(pk=sid)).state == "idle"


async def test_a_resent_message_whose_run_died_before_its_first_word_is_answered_in_its_reply(storage, owner):
    sid = uuid.uuid4()
    first = await start(storage, owner, sid, turns.SendMessage("once", "c-1"))
    await sync_to_async(ChatSession.objects.filter(pk=sid).update)(state="failed", run_id=None)

    again = await start(storage, owner, sid, turns.SendMessage("once", "c-1"))
    assert isinstance(again, turns.Turn) and again.events == first.events
    assert again.reply == first.reply  # written into, not stored again
    assert await contents(sid) == ["once", EMPTY]
    assert (await ChatSession.objects.aget(pk=sid)).state == "running"


async def test_two_first_messages_racing_on_one_new_id_make_one_chat_and_one_run(storage, owner):
    sid = uuid.uuid4()
    outcomes = await asyncio.gather(
        *(start(storage, owner, sid, turns.SendMessage(f"first {n}", f"c-{n}")) for n in range(5)),
        return_exceptions=True,
    )
    started = [o for o in outcomes if isinstance(o, turns.Turn)]
    refused = [o for o in outcomes if isinstance(o, UserError)]
    assert len(started) == 1 and len(refused) == 4, outcomes
    assert {error.code for error in refused} == {"busy"}
    assert len(await messages(sid)) == 2  # one message, one reply


async def paused(storage, owner, *, options=("Python", "Rust")):
    """A chat whose turn paused on a question (as the loop leaves it)."""
    sid = await new_chat(owner)
    await storage.save_messages(
        sid,
        [
            {"role": "user", "content": "help me pick"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_q", "name": "propose_options", "input": {}}]},
        ],
    )
    await LoopState.objects.acreate(
        session_id=sid,
        tool_use_id="toolu_q",
        tool_name="propose_options",
        step=1,
        question="Which?",
        options=list(options),
        pending_results=[
            {"type": "tool_result", "tool_use_id": "toolu_q", "content": "", "requires_user_input": True, "interactive_data": {"question": "Which?"}}
        ],
    )
    await sync_to_async(ChatSession.objects.filter(pk=sid).update)(state="awaiting_input")
    return sid


async def test_a_chosen_option_answers_the_question_and_resumes_the_turn(storage, owner):
    sid = await paused(storage, owner)
    turn = await start(storage, owner, sid, turns.Choose("toolu_q", "Rust"))

    assert turn.step == 1
    stored, answered = turn.events
    assert stored["sequence"] == 3 and answered == {
        "type": "tool_result", "tool_use_id": "toolu_q", "content": "User selected: Rust", "is_error": False
    }
    [result] = (await messages(sid))[-2]["content"]
    assert turn.reply["sequence"] == 4 and (await messages(sid))[-1]["content"] == EMPTY
    assert result["content"] == "User selected: Rust" and "requires_user_input" not in result
    assert result["interactive_data"] == {"question": "Which?"}  # kept for the UI
    assert not await LoopState.objects.filter(session_id=sid).aexists()
    assert (await ChatSession.objects.aget(pk=sid)).state == "running"


async def test_text_sent_while_a_question_is_open_answers_it_with_the_senders_client_id(storage, owner):
    sid = await paused(storage, owner)
    turn = await start(storage, owner, sid, turns.SendMessage("  Neither, Zig  ", "typed-1"))

    stored, answered = turn.events
    assert stored["client_id"] == "typed-1"
    assert answered["content"] == "User replied: Neither, Zig"
    # Sent again while its run goes on (the page missed the acknowledgement): acknowledged.
    again = await start(storage, owner, sid, turns.SendMessage("  Neither, Zig  ", "typed-1"))
    assert again == turns.Acknowledged(stored)
    assert len(await messages(sid)) == 4  # question turn (2), answer, its reply


@pytest.mark.parametrize(
    "action, code",
    [
        (turns.Choose("toolu_q", "Cobol"), "invalid_choice"),
        (turns.Choose("toolu_q", "rust"), "invalid_choice"),
        (turns.Choose("toolu_other", "Rust"), "unknown_question"),
    ],
)
async def test_a_bad_answer_changes_nothing_and_the_question_stays_open(storage, owner, action, code):
    sid = await paused(storage, owner)
    before = await messages(sid)
    with pytest.raises(UserError) as refused:
        await start(storage, owner, sid, action)
    assert refused.value.code == code
    assert await messages(sid) == before
    assert await LoopState.objects.filter(session_id=sid).aexists()
    assert (await ChatSession.objects.aget(pk=sid)).state == "awaiting_input"


async def test_a_rate_limited_action_stores_nothing(storage, owner, settings):
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 1
    sid = uuid.uuid4()
    await start(storage, owner, sid, turns.SendMessage("one"))
    await sync_to_async(ChatSession.objects.filter(pk=sid).update)(state="idle", run_id=None)
    with pytest.raises(UserError) as limited:
        await start(storage, owner, sid, turns.SendMessage("two"))
    assert limited.value.code == "rate_limited"
    assert await contents(sid) == ["one", EMPTY]


async def test_a_message_larger_than_the_window_is_refused_saying_by_how_much_and_nothing_is_stored(storage, owner, settings):
    settings.CHAT_CONTEXT_TOKENS = 1_000
    sid = uuid.uuid4()
    with pytest.raises(UserError) as refused:
        await start(storage, owner, sid, turns.SendMessage("x" * 4_400, "c-big"))  # 1,100 tokens
    assert (refused.value.code, refused.value.status) == ("context_too_long", 413)
    assert "about 1,100 tokens: 100 tokens more than the model's context window of 1,000" in refused.value.message
    assert not await ChatSession.objects.filter(pk=sid).aexists()
    turn = await start(storage, owner, sid, turns.SendMessage("x" * 4_000, "c-fits"))  # 1,000: fits exactly
    assert isinstance(turn, turns.Turn)
