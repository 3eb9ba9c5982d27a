"""GET /api/v1/search/: your own chats only, cursor pages, and no text a 500."""

from __future__ import annotations

import pytest

from chat.models import ChatSession
from chat.storage import database
from tests.chat.api.checks import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/search/"


def chat(owner, *texts, title=""):
    session = ChatSession.objects.create(owner=owner, title=title)
    roles = ("user", "assistant")
    database.save_messages(session.pk, [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)])
    return session


def test_a_hit_names_the_chat_the_message_and_marks_the_words(as_owner, owner):
    session = chat(owner, "Remind me about the <b>gnu</b> migration", title="Herds")
    response = as_owner.get(URL, {"q": "gnu"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next"] is None
    [hit] = body["results"]
    assert hit["chat"] == {"id": str(session.pk), "title": "Herds"}
    message = hit["message"]
    assert set(message) == {"id", "branch", "sequence", "role", "created_at", "on_active_path"}
    assert (message["sequence"], message["role"], message["on_active_path"]) == (1, "user", True)
    assert {"text": "gnu", "match": True} in hit["snippet"]
    # The snippet is data: whatever markup the message holds stays text (or is left out).
    assert all("<mark>" not in fragment["text"] for fragment in hit["snippet"])


def test_someone_elses_chats_are_never_found(as_stranger, owner):
    chat(owner, "the owner's secret: quince", title="Quince")
    response = as_stranger.get(URL, {"q": "quince"})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_anonymous_requests_are_refused(anonymous):
    assert_error(anonymous.get(URL, {"q": "x"}), 401)


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "   "}, {"q": "a" * 201}, {"q": "a\x00b"}],
)
def test_a_missing_or_impossible_query_is_a_clear_400(as_owner, params):
    assert_error(as_owner.get(URL, params), 400, "invalid_query")


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "51"}, {"limit": "x"}, {"cursor": "nope"}, {"cursor": "eyJzIjogIm5hbiJ9"}])
def test_bad_paging_parameters_are_a_400(as_owner, params):
    assert_error(as_owner.get(URL, {"q": "x", **params}), 400, "invalid")


@pytest.mark.parametrize(
    "q",
    ['"', '""', "-", "--x", "or", "x or", "or or or", "!", "&|!", "a & b", "a | b", "(a", "a)", "a:*", "NEAR(a b)",
     "body:x", "^x", "*", "x*", "'", "\\", "-\"a b\"", "a -", "''''", "é ü ß", "日本語", "\u202e", "😀", "a\tb"],
)
def test_no_text_is_a_server_error(as_owner, owner, q):
    chat(owner, "a b x or something", title="x")
    response = as_owner.get(URL, {"q": q})
    assert response.status_code == 200, response.content
    assert isinstance(response.json()["results"], list)


def test_pages_follow_next_to_the_end(as_owner, owner):
    chat(owner, *[f"wombat note {i}" for i in range(7)], title="Wombats")
    seen, url, params = [], URL, {"q": '"wombat"', "limit": 3}  # quoted: as written
    while url:
        response = as_owner.get(url, params)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [(hit["message"] or {}).get("id") for hit in body["results"]]
        url, params = body["next"], None
    assert len(seen) == 7 and len(set(seen)) == 7  # the messages; "Wombats" is not "wombat"
    # Unquoted, the last word is also the start of one: the title "Wombats" is found too.
    assert len(as_owner.get(URL, {"q": "wombat", "limit": 20}).json()["results"]) == 8
