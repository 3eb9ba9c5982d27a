"""GET/POST /api/v1/chats/ and GET/PATCH/DELETE /api/v1/chats/<id>/."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from chat.models import ChatSession, Message
from tests.chat.api.checks import assert_error
from tests.factories import seed_history

pytestmark = pytest.mark.django_db

LIST = "/api/v1/chats/"
CHAT_FIELDS = {"id", "title", "state", "message_count", "total_tokens", "created_at", "updated_at"}


def detail(chat_id) -> str:
    return f"/api/v1/chats/{chat_id}/"


# --- list -----------------------------------------------------------------------------------


def test_list_shows_only_the_owners_chats_newest_activity_first(as_owner, owner, stranger):
    older = seed_history(owner, 2)
    newer = seed_history(owner, 4)
    seed_history(stranger, 2)
    ChatSession.objects.filter(pk=older.pk).update(title="older")
    ChatSession.objects.filter(pk=newer.pk).update(title="newer")
    # Activity order, not creation order: the older chat is written to last.
    ChatSession.objects.filter(pk=older.pk).update(updated_at=newer.updated_at.replace(year=2100))

    body = as_owner.get(LIST).json()

    assert [c["title"] for c in body["results"]] == ["older", "newer"]
    first = body["results"][0]
    assert set(first) == CHAT_FIELDS
    assert first["id"] == str(older.pk)
    assert (first["message_count"], first["total_tokens"], first["state"]) == (2, older.total_tokens, "idle")


def test_list_pages_with_a_cursor(as_owner, owner):
    made = {str(seed_history(owner, 1).pk) for _ in range(5)}

    first = as_owner.get(LIST, {"limit": 2}).json()
    second = as_owner.get(first["next"]).json()
    third = as_owner.get(second["next"]).json()

    pages = [first, second, third]
    seen = [c["id"] for page in pages for c in page["results"]]
    assert [len(page["results"]) for page in pages] == [2, 2, 1]
    assert set(seen) == made and len(seen) == 5
    assert third["next"] is None


def test_list_query_count_does_not_grow_and_never_reads_messages(as_owner, owner):
    seed_history(owner, 3)
    with CaptureQueriesContext(connection) as few:
        assert as_owner.get(LIST).status_code == 200
    for _ in range(20):
        seed_history(owner, 30)
    with CaptureQueriesContext(connection) as many:
        assert len(as_owner.get(LIST).json()["results"]) == 21

    assert len(many.captured_queries) == len(few.captured_queries)
    table = Message._meta.db_table
    assert not [q["sql"] for q in many.captured_queries if table in q["sql"]]


def test_list_anonymous_is_401(anonymous):
    assert_error(anonymous.get(LIST), 401, "not_authenticated")


@pytest.mark.parametrize("limit", ["0", "-1", "201", "ten", ""])
def test_list_bad_limit_is_400(as_owner, limit):
    body = assert_error(as_owner.get(LIST, {"limit": limit}), 400, "invalid")
    assert "limit" in body["message"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!",
        "cD1ub3QtYS1kYXRl",  # p=not-a-date: a hand-made cursor whose position is not a time
        "bz14",  # o=x
    ],
)
def test_list_bad_cursor_is_400(as_owner, owner, cursor):
    seed_history(owner, 1)
    body = assert_error(as_owner.get(LIST, {"cursor": cursor}), 400, "invalid")
    assert "cursor" in body["message"]


# --- create ---------------------------------------------------------------------------------


def test_create_makes_an_empty_chat_for_the_caller(as_owner, owner):
    response = as_owner.post(LIST, {"title": "  Trip   plans "}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == CHAT_FIELDS
    assert body["title"] == "Trip plans"
    assert body["message_count"] == 0
    assert response["Location"] == detail(body["id"])
    assert ChatSession.objects.get(pk=body["id"]).owner == owner


def test_create_without_a_title(as_owner):
    response = as_owner.post(LIST, {}, format="json")
    assert response.status_code == 201
    assert response.json()["title"] == ""


@pytest.mark.parametrize(
    "payload",
    [{"title": "x" * 201}, {"title": ["a"]}, {"title": "bad\x00title"}, {"title": "bell\x07"}, ["not", "an", "object"]],
)
def test_create_with_a_bad_title_is_400_and_creates_nothing(as_owner, payload):
    assert_error(as_owner.post(LIST, payload, format="json"), 400)
    assert not ChatSession.objects.exists()


def test_create_with_malformed_json_is_400(as_owner):
    assert_error(as_owner.post(LIST, "{nope", content_type="application/json"), 400, "parse_error")


def test_create_anonymous_is_401(anonymous):
    assert_error(anonymous.post(LIST, {"title": "x"}, format="json"), 401)
    assert not ChatSession.objects.exists()


def test_create_with_a_session_needs_the_csrf_token(owner):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(owner)

    refused = browser.post(LIST, {"title": "x"}, format="json")
    browser.get("/")  # any page with a form sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(LIST, {"title": "x"}, format="json", HTTP_X_CSRFTOKEN=token)

    assert_error(refused, 403, "permission_denied")
    assert "CSRF" in refused.json()["message"]
    assert accepted.status_code == 201


# --- one chat -------------------------------------------------------------------------------


def test_get_one_chat(as_owner, chat):
    body = as_owner.get(detail(chat.pk)).json()
    assert set(body) == CHAT_FIELDS
    assert (body["id"], body["title"], body["message_count"]) == (str(chat.pk), "Sums", 4)


def test_someone_elses_chat_is_the_same_404_as_a_missing_one(as_stranger, chat):
    theirs = assert_error(as_stranger.get(detail(chat.pk)), 404, "not_found")
    missing = assert_error(as_stranger.get(detail(uuid.uuid4())), 404, "not_found")
    assert theirs == missing


def test_get_one_chat_anonymous_is_401(anonymous, chat):
    assert_error(anonymous.get(detail(chat.pk)), 401)


def test_a_malformed_chat_id_is_a_json_404(as_owner):
    assert_error(as_owner.get("/api/v1/chats/not-a-uuid/"), 404, "not_found")


def test_rename(as_owner, chat):
    response = as_owner.patch(detail(chat.pk), {"title": "Better name"}, format="json")
    assert response.status_code == 200
    assert response.json()["title"] == "Better name"
    chat.refresh_from_db()
    assert chat.title == "Better name"


def test_rename_with_nothing_to_change_returns_the_chat(as_owner, chat):
    response = as_owner.patch(detail(chat.pk), {}, format="json")
    assert response.status_code == 200
    assert response.json()["title"] == "Sums"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, None, "tab\x00"])
def test_rename_to_a_bad_title_is_400_and_changes_nothing(as_owner, chat, title):
    assert_error(as_owner.patch(detail(chat.pk), {"title": title}, format="json"), 400)
    chat.refresh_from_db()
    assert chat.title == "Sums"


def test_renaming_someone_elses_chat_is_404_and_changes_nothing(as_stranger, chat):
    assert_error(as_stranger.patch(detail(chat.pk), {"title": "mine now"}, format="json"), 404)
    chat.refresh_from_db()
    assert chat.title == "Sums"


def test_rename_anonymous_is_401(anonymous, chat):
    assert_error(anonymous.patch(detail(chat.pk), {"title": "x"}, format="json"), 401)


def test_delete_removes_the_chat_and_its_messages(as_owner, chat):
    assert as_owner.delete(detail(chat.pk)).status_code == 204
    assert not ChatSession.objects.filter(pk=chat.pk).exists()
    assert not Message.objects.filter(session_id=chat.pk).exists()
    assert_error(as_owner.get(detail(chat.pk)), 404)


def test_deleting_someone_elses_chat_is_404_and_keeps_it(as_stranger, chat):
    assert_error(as_stranger.delete(detail(chat.pk)), 404)
    assert ChatSession.objects.filter(pk=chat.pk).exists()


def test_delete_anonymous_is_401(anonymous, chat):
    assert_error(anonymous.delete(detail(chat.pk)), 401)
    assert ChatSession.objects.filter(pk=chat.pk).exists()
