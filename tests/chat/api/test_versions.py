"""A message's versions over HTTP: edit, regenerate, list, switch and fork go through the
same turn service and tree as the websocket; what may not change is refused and changes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from chat.models import ChatSession, Message
from tests.chat.api.test_turns import idle, post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def client(owner):
    client = AsyncClient()
    await sync_to_async(client.force_login)(owner)
    return client


def action(sid, message_id, name):
    return f"/api/v1/chats/{sid}/messages/{message_id}/{name}/"


async def act(client, sid, message_id, name, **body):
    return await client.post(action(sid, message_id, name), data=json.dumps(body), content_type="application/json")


async def shown(client, sid):
    response = await client.get(f"/api/v1/chats/{sid}/messages/")
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def text(message):
    content = message["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


async def a_chat(client):
    sid = uuid.uuid4()
    assert (await post(client, sid, text="say hello")).status_code == 202
    await idle(sid)
    return sid


async def test_an_edit_is_answered_and_both_versions_can_be_listed_and_shown(client):
    sid = await a_chat(client)
    [question, first_reply] = await shown(client, sid)
    assert question["versions"] is None

    edited = await act(client, sid, question["id"], "edit", text="say goodbye", client_id="edit-1")
    assert edited.status_code == 202, edited.json()
    assert (edited.json()["started"], edited.json()["message"]["content"]) == (True, "say goodbye")
    await idle(sid)
    again = await act(client, sid, question["id"], "edit", text="say goodbye", client_id="edit-1")
    assert (again.status_code, again.json().get("started")) == (200, False), again.json()  # a resent edit is one edit

    [new_question, new_reply] = await shown(client, sid)
    assert "say goodbye" in text(new_reply) and new_question["versions"] == {"index": 2, "count": 2}

    versions = await client.get(action(sid, new_question["id"], "versions"))
    assert [(v["id"], v["active"]) for v in versions.json()["results"]] == [(question["id"], False), (new_question["id"], True)]

    switched = await act(client, sid, question["id"], "switch")
    assert switched.status_code == 200 and switched.json()["sequence"] == 1
    assert [m["id"] for m in await shown(client, sid)] == [question["id"], first_reply["id"]]


async def test_a_regenerated_reply_is_a_second_version_and_a_fork_is_a_new_chat(client, owner):
    sid = await a_chat(client)
    [question, reply] = await shown(client, sid)
    regenerated = await act(client, sid, reply["id"], "regenerate")
    assert regenerated.status_code == 202, regenerated.json()
    await idle(sid)
    [same_question, new_reply] = await shown(client, sid)
    assert same_question["id"] == question["id"] and new_reply["id"] != reply["id"]
    assert new_reply["versions"] == {"index": 2, "count": 2}

    forked = await act(client, sid, question["id"], "fork")
    assert forked.status_code == 201, forked.json()
    fork_id = forked.json()["id"]
    assert forked["Location"].endswith(f"/chats/{fork_id}/")
    assert [text(m) for m in await shown(client, fork_id)] == ["say hello"]
    assert (await ChatSession.objects.aget(pk=fork_id)).owner_id == owner.pk
    assert await Message.objects.filter(session_id=sid).acount() == 3  # the source is untouched


@pytest.mark.parametrize(
    "target, name, body, status, code",
    [
        ("question", "edit", {"text": "\u200b"}, 400, "empty_message"),
        ("question", "edit", {"text": "x" * 30_000}, 400, "text_too_long"),
        ("question", "edit", {}, 400, "invalid"),
        ("question", "edit", {"text": "hi", "client_id": "has spaces"}, 400, "invalid"),
        ("reply", "edit", {"text": "my words in its mouth"}, 400, "not_editable"),
        ("question", "regenerate", {}, 400, "not_a_reply"),
        ("missing", "edit", {"text": "hi"}, 404, "not_found"),
        ("missing", "switch", {}, 404, "not_found"),
        ("missing", "versions", None, 404, "not_found"),
        ("missing", "fork", {}, 404, "not_found"),
    ],
)
async def test_what_cannot_be_done_is_a_clear_error_and_changes_nothing(client, target, name, body, status, code):
    sid = await a_chat(client)
    [question, reply] = await shown(client, sid)
    message_id = {"question": question["id"], "reply": reply["id"], "missing": uuid.uuid4()}[target]
    if body is None:
        response = await client.get(action(sid, message_id, name))
    else:
        response = await act(client, sid, message_id, name, **body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.json()
    assert await Message.objects.filter(session_id=sid).acount() == 2
    assert await ChatSession.objects.acount() == 1
    session = await ChatSession.objects.aget(pk=sid)
    assert (session.branch_count, session.state) == (0, "idle")


async def test_someone_elses_chat_is_404_for_every_action(client, stranger):
    sid = await a_chat(client)
    [question, reply] = await shown(client, sid)
    theirs = AsyncClient()
    await sync_to_async(theirs.force_login)(stranger)
    for name, message_id in [("edit", question["id"]), ("regenerate", reply["id"]), ("switch", question["id"]), ("fork", question["id"])]:
        response = await act(theirs, sid, message_id, name, text="mine now")
        assert response.status_code == 404, (name, response.json())
    assert (await theirs.get(action(sid, question["id"], "versions"))).status_code == 404
    assert await Message.objects.filter(session_id=sid).acount() == 2
    assert await ChatSession.objects.acount() == 1


async def test_nothing_changes_versions_while_a_reply_is_being_written(client, settings):
    sid = await a_chat(client)
    [question, reply] = await shown(client, sid)
    settings.OFFLINE_MODEL_WORD_DELAY = 0.05
    assert (await post(client, sid, text="tell me a long story please")).status_code == 202
    for name, message_id, body in [("edit", question["id"], {"text": "hey"}), ("regenerate", reply["id"], {}), ("switch", question["id"], {})]:
        response = await act(client, sid, message_id, name, **body)
        assert (response.status_code, response.json()["code"]) == (409, "busy"), name
    await idle(sid)
    assert (await ChatSession.objects.aget(pk=sid)).branch_count == 0
