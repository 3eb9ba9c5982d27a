"""GET /api/v1/chats/<id>/messages/?after=&limit="""

from __future__ import annotations

import pytest

from chat.models import Message
from tests.chat.api.checks import assert_error
from tests.factories import seed_history

pytestmark = pytest.mark.django_db


def url(chat_id) -> str:
    return f"/api/v1/chats/{chat_id}/messages/"


def test_messages_come_as_stored_with_the_data_the_ui_needs(as_owner, chat):
    Message.objects.filter(session=chat, sequence=4).update(
        usage={"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
        context={"first_sequence": 1, "last_sequence": 3, "dropped": 0},
        finished=False,
    )

    body = as_owner.get(url(chat.pk)).json()

    messages = body["results"]
    assert [m["sequence"] for m in messages] == [1, 2, 3, 4]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "2+2?"
    assert messages[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "calculate",
        "input": {"expression": "2+2"},
    }
    # The extra keys beside a tool result are kept: the UI rebuilds its displays from them.
    assert messages[2]["content"][0]["display_data"] == {"x": 1}
    assert messages[3]["usage"]["output_tokens"] == 3
    assert messages[3]["context"] == {"first_sequence": 1, "last_sequence": 3, "dropped": 0}
    assert messages[3]["finished"] is False
    assert set(messages[0]) == {
        "id",
        "branch",
        "versions",
        "sequence",
        "role",
        "content",
        "finished",
        "tokens",
        "tokens_estimated",
        "client_id",
        "usage",
        "context",
        "created_at",
    }
    assert body["next"] is None and body["next_after"] is None


def test_messages_page_by_sequence(as_owner, owner):
    session = seed_history(owner, 7)

    first = as_owner.get(url(session.pk), {"limit": 3}).json()
    second = as_owner.get(first["next"]).json()
    last = as_owner.get(url(session.pk), {"after": second["next_after"], "limit": 3}).json()

    assert [m["sequence"] for m in first["results"]] == [1, 2, 3]
    assert first["next_after"] == 3
    assert [m["sequence"] for m in second["results"]] == [4, 5, 6]
    assert [m["sequence"] for m in last["results"]] == [7]
    assert last["next"] is None


def test_messages_after_the_end_are_an_empty_page(as_owner, chat):
    body = as_owner.get(url(chat.pk), {"after": 4}).json()
    assert body == {"results": [], "next": None, "next_after": None}


def test_someone_elses_messages_are_404(as_stranger, chat):
    assert_error(as_stranger.get(url(chat.pk)), 404, "not_found")


def test_messages_anonymous_is_401(anonymous, chat):
    assert_error(anonymous.get(url(chat.pk)), 401)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
        ({"after": str(2**31)}, "after"),
        ({"after": "1.5"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "lots"}, "limit"),
    ],
)
def test_bad_after_or_limit_is_400_naming_it(as_owner, chat, params, named):
    body = assert_error(as_owner.get(url(chat.pk), params), 400, "invalid")
    assert body["message"].startswith(f"{named}:")
