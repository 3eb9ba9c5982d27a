"""The administration services: repairing a stuck session, dropping a cache entry."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from chat import history, runtime, services
from chat.errors import UserError
from chat.models import ChatSession, LoopState, Message
from tests.factories import pause_on_question, seed_history, tool_turn

# Repairs write through HybridStorage, whose database calls run in Django's sync thread.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("key_prefix")]


def stored(session: ChatSession) -> list[Message]:
    return list(Message.objects.filter(session=session).order_by("sequence"))


def test_repair_answers_the_paused_question_keeps_the_other_results_and_marks_idle(owner):
    session = pause_on_question(owner)

    assert services.repair_stuck_session(session.pk) is True

    session.refresh_from_db()
    assert session.state == ChatSession.State.IDLE
    assert not LoopState.objects.filter(session=session).exists()
    last = stored(session)[-1]
    assert (last.sequence, last.role) == (3, "user")
    # In the order of the calls: the kept calculation result, then the closed question.
    assert last.content == [
        {"type": "tool_result", "tool_use_id": "toolu_calc", "content": "2", "display_data": {"x": 1}},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_choice",
            "content": services.QUESTION_CLOSED_RESULT,
            "is_error": True,
        },
    ]
    # The repaired history is one the model accepts as it is: nothing left to patch.
    api = history.to_api_messages([{"role": m.role, "content": m.content} for m in stored(session)])
    assert api[-1]["content"][1]["content"] == services.QUESTION_CLOSED_RESULT


def test_repair_answers_a_crashed_turns_tool_calls_with_errors(owner):
    turn = tool_turn("toolu_lost")[:2]  # the question and the call; the result never came
    session = seed_history(owner, 2, content=lambda seq: turn[seq - 1]["content"])
    ChatSession.objects.filter(pk=session.pk).update(state=ChatSession.State.RUNNING)

    assert services.repair_stuck_session(session.pk) is True

    [result] = stored(session)[-1].content
    assert result == {
        "type": "tool_result",
        "tool_use_id": "toolu_lost",
        "content": history.INTERRUPTED_TOOL_RESULT,
        "is_error": True,
    }
    assert ChatSession.objects.get(pk=session.pk).state == ChatSession.State.IDLE


def test_repairing_twice_stores_nothing_more(owner):
    session = pause_on_question(owner)
    services.repair_stuck_session(session.pk)

    assert services.repair_stuck_session(session.pk) is False
    assert len(stored(session)) == 3


def test_repair_of_a_healthy_idle_session_changes_nothing(owner):
    session = seed_history(owner, 4)
    assert services.repair_stuck_session(session.pk) is False
    assert len(stored(session)) == 4


def test_repair_keeps_the_cache_right(owner):
    session = pause_on_question(owner)
    storage = runtime.get().storage
    before = async_to_sync(storage.load_recent_messages)(session.pk, 10)  # fills the cache

    services.repair_stuck_session(session.pk)

    after = async_to_sync(storage.load_recent_messages)(session.pk, 10)
    assert [m["sequence"] for m in before] == [1, 2]
    assert [m["sequence"] for m in after] == [1, 2, 3]


def test_drop_session_cache_empties_the_entry(owner):
    session = seed_history(owner, 3)
    storage = runtime.get().storage
    async_to_sync(storage.load_recent_messages)(session.pk, 10)
    assert async_to_sync(storage.cache.read_recent)(str(session.pk), 3) is not None

    services.drop_session_cache(session.pk)

    assert async_to_sync(storage.cache.read_recent)(str(session.pk), 3) is None


@pytest.mark.parametrize("title", ["nul\x00", "bell\x07", "lone \ud800 surrogate"])
def test_titles_refuse_characters_that_cannot_be_shown_or_stored(owner, title):
    with pytest.raises(UserError) as caught:
        services.create_session(owner, title=title)
    assert caught.value.code == "invalid_title"


def test_titles_keep_emoji_joined_with_zero_width_joiners(owner):
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert services.create_session(owner, title=f"{family} trip").title == f"{family} trip"
