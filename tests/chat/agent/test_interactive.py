"""Interactive tools: the loop pauses on a question and resumes with the user's answer."""

from __future__ import annotations

import asyncio

import pytest

from chat.agent.providers.offline import OfflineProvider
from chat.errors import UserError
from tests.chat.agent.conftest import assert_history_valid, collect, of_type, stored_messages, turn
from tests.fakes.scripted import ScriptedProvider, call, say
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = {"question": "Which language?", "options": ["Python", "Rust", "Go"]}


async def paused(manager, *calls, ids):
    """Run a turn whose model calls ``calls``; return the model and the events."""
    model = ScriptedProvider(call(*calls, ids=ids))
    events = await collect(turn(manager, model, builtin_tools(), "Help me pick"))
    return model, events


async def test_the_full_cycle_pause_store_resume_complete(manager, session_id):
    model, events = await paused(manager, ("propose_options", QUESTION), ids=["toolu_q"])

    assert events[-1] == {
        "type": "awaiting_user_input", "tool_use_id": "toolu_q", "tool": "propose_options",
        "question": "Which language?", "options": ["Python", "Rust", "Go"],
    }
    assert of_type(events, "tool_result") == []
    state = await manager.load_loop_state()
    assert (state["tool_use_id"], state["tool_name"], state["step"]) == ("toolu_q", "propose_options", 1)
    assert [m["role"] for m in await stored_messages(session_id)] == ["user", "assistant"]

    model.add(say("Rust it is."))
    events = await collect(turn(manager, model, builtin_tools(), tool_use_id="toolu_q", choice="Rust"))

    assert events[0]["type"] == "message" and events[0]["role"] == "user"
    assert of_type(events, "tool_result") == [
        {"type": "tool_result", "tool_use_id": "toolu_q", "content": "User selected: Rust", "is_error": False}
    ]
    assert events[-1]["type"] == "complete"
    assert model.calls[-1]["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_q", "content": "User selected: Rust", "is_error": False}
    ]
    assert await manager.load_loop_state() is None
    stored = (await stored_messages(session_id))[2]["content"][0]
    assert stored["interactive_data"] == QUESTION and "requires_user_input" not in stored
    await assert_history_valid(session_id)


async def test_a_regular_and_an_interactive_tool_in_one_turn(manager, session_id):
    model, events = await paused(
        manager, ("calculate", {"expression": "2+3"}), ("propose_options", QUESTION), ids=["toolu_calc", "toolu_q"]
    )

    # The regular result is shown at once; the question waits.
    assert of_type(events, "tool_result") == [
        {"type": "tool_result", "tool_use_id": "toolu_calc", "content": "2+3 = 5", "is_error": False}
    ]
    assert events[-1]["type"] == "awaiting_user_input"
    state = await manager.load_loop_state()
    assert [r["tool_use_id"] for r in state["pending_results"]] == ["toolu_calc", "toolu_q"]

    model.add(say("Done."))
    await collect(turn(manager, model, builtin_tools(), tool_use_id="toolu_q", choice="Go"))

    results_message = (await stored_messages(session_id))[2]
    assert [(b["tool_use_id"], b["content"]) for b in results_message["content"]] == [
        ("toolu_calc", "2+3 = 5"), ("toolu_q", "User selected: Go")
    ]
    sent = model.calls[-1]["messages"][-1]["content"]
    assert [(b["tool_use_id"], b["content"]) for b in sent] == [("toolu_calc", "2+3 = 5"), ("toolu_q", "User selected: Go")]
    await assert_history_valid(session_id)


async def test_a_typed_answer_is_sent_as_the_users_reply(manager, session_id):
    model, _ = await paused(manager, ("propose_options", QUESTION), ids=["toolu_q"])
    model.add(say("Fair enough."))
    events = await collect(
        turn(manager, model, builtin_tools(), "  Neither, I like Zig  ")
    )

    assert of_type(events, "tool_result")[0]["content"] == "User replied: Neither, I like Zig"
    assert model.calls[-1]["messages"][-1]["content"][0]["content"] == "User replied: Neither, I like Zig"


@pytest.mark.parametrize(
    "answer, code",
    [
        ({"tool_use_id": "toolu_q", "choice": "Cobol"}, "invalid_choice"),
        ({"tool_use_id": "toolu_q", "choice": "rust"}, "invalid_choice"),
        ({"tool_use_id": "toolu_other", "choice": "Rust"}, "unknown_question"),
    ],
)
async def test_a_bad_answer_is_refused_and_changes_nothing(manager, session_id, answer, code):
    model, _ = await paused(manager, ("propose_options", QUESTION), ids=["toolu_q"])
    before = await stored_messages(session_id)
    state = await manager.load_loop_state()

    with pytest.raises(UserError) as refused:
        await collect(turn(manager, model, builtin_tools(), **answer))

    assert refused.value.code == code
    assert await stored_messages(session_id) == before
    assert await manager.load_loop_state() == state
    assert len(model.calls) == 1


async def test_resuming_a_chat_that_is_not_paused_is_refused(manager, session_id):
    model = ScriptedProvider(say("Hello."))
    await collect(turn(manager, model, builtin_tools(), "Hi"))
    with pytest.raises(UserError) as refused:
        await collect(turn(manager, model, builtin_tools(), tool_use_id="toolu_q", choice="Rust"))
    assert refused.value.code == "not_awaiting_input"
    assert len(await stored_messages(session_id)) == 2


async def test_of_two_answers_sent_at_once_only_one_is_stored(manager, session_id):
    model, _ = await paused(manager, ("propose_options", QUESTION), ids=["toolu_q"])
    model.add(say("One."), say("Two."))

    outcomes = await asyncio.gather(
        collect(turn(manager, model, builtin_tools(), tool_use_id="toolu_q", choice="Rust")),
        collect(turn(manager, model, builtin_tools(), tool_use_id="toolu_q", choice="Go")),
        return_exceptions=True,
    )

    refused = [o for o in outcomes if isinstance(o, UserError)]
    # The second finds the first's run going, or the question answered already.
    assert len(refused) == 1 and refused[0].code in ("busy", "not_awaiting_input")
    results = [m for m in await stored_messages(session_id) if m["role"] == "user" and isinstance(m["content"], list)]
    assert len(results) == 1
    await assert_history_valid(session_id)


async def test_only_one_question_is_asked_per_turn(manager, session_id):
    other = {"question": "Which editor?", "options": ["vim", "emacs"]}
    model, events = await paused(manager, ("propose_options", QUESTION), ("propose_options", other), ids=["q1", "q2"])

    assert events[-1]["tool_use_id"] == "q1"
    [second] = of_type(events, "tool_result")
    assert second["tool_use_id"] == "q2" and second["is_error"] is True

    model.add(say("OK."))
    await collect(turn(manager, model, builtin_tools(), tool_use_id="q1", choice="Go"))
    sent = model.calls[-1]["messages"][-1]["content"]
    assert [(b["tool_use_id"], b["is_error"]) for b in sent] == [("q1", False), ("q2", True)]


async def test_a_question_with_bad_options_is_an_error_result_not_a_pause(manager):
    model = ScriptedProvider(call(("propose_options", {"question": "Pick", "options": ["only one"]}), ids=["q"]), say("Hm."))
    events = await collect(turn(manager, model, builtin_tools(), "Help"))

    assert of_type(events, "awaiting_user_input") == []
    assert of_type(events, "tool_result")[0]["is_error"] is True
    assert events[-1]["type"] == "complete"


async def test_the_step_count_carries_over_a_pause(manager):
    model, _ = await paused(manager, ("propose_options", QUESTION), ids=["toolu_q"])
    model.add(call(("calculate", {"expression": "1+1"})))
    events = await collect(
        turn(manager, model, builtin_tools(), tool_use_id="toolu_q", choice="Rust", max_steps=2)
    )
    assert events[-1]["code"] == "step_limit"
    assert len(model.calls) == 2


async def test_the_offline_model_asks_and_uses_the_answer(manager, session_id):
    model = OfflineProvider(word_delay=0)
    events = await collect(turn(manager, model, builtin_tools(), "Give me some options"))
    question = events[-1]
    assert question["type"] == "awaiting_user_input"
    assert len(question["options"]) == 3

    events = await collect(
        turn(manager, model, builtin_tools(), tool_use_id=question["tool_use_id"], choice=question["options"][2])
    )
    assert events[-1]["type"] == "complete"
    reply = of_type(events, "message")[-1]["content"][0]["text"]
    assert reply == f"You chose {question['options'][2]}. Good choice!"
    await assert_history_valid(session_id)


async def test_a_stranger_can_neither_answer_nor_see_the_question(manager, session_id, storage, stranger):
    from chat.errors import NotFound
    from chat.message_manager import MessageManager

    model, _ = await paused(manager, ("propose_options", QUESTION), ids=["toolu_q"])
    state = await manager.load_loop_state()
    intruder = MessageManager(session_id, stranger, storage=storage, injections=())

    with pytest.raises(NotFound):
        await collect(turn(intruder, model, builtin_tools(), tool_use_id="toolu_q", choice="Rust"))
    with pytest.raises(NotFound):
        await collect(turn(intruder, model, builtin_tools(), "Hi"))
    assert await manager.load_loop_state() == state
    assert len(await stored_messages(session_id)) == 2
