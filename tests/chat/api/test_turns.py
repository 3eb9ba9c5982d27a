"""POST /api/v1/chats/<id>/messages/: a script starts a turn through the turn service."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from chat.models import ChatSession, Message

pytestmark = pytest.mark.django_db(transaction=True)


def url(chat_id) -> str:
    return f"/api/v1/chats/{chat_id}/messages/"


@pytest.fixture
async def client(owner):
    client = AsyncClient()
    await sync_to_async(client.force_login)(owner)
    return client


async def post(client, chat_id, **body):
    return await client.post(url(chat_id), data=json.dumps(body), content_type="application/json")


async def idle(chat_id) -> ChatSession:
    for _ in range(200):
        session = await ChatSession.objects.aget(pk=chat_id)
        if session.state != "running":
            return session
        await asyncio.sleep(0.05)
    raise AssertionError("the run never ended")


async def test_a_posted_message_is_stored_and_answered_in_the_background(client):
    sid = uuid.uuid4()
    response = await post(client, sid, text="calculate 6 * 7", client_id="script-1")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["started"] is True
    assert (body["message"]["sequence"], body["message"]["content"], body["message"]["client_id"]) == (1, "calculate 6 * 7", "script-1")
    assert (await idle(sid)).state == "idle"
    reply = [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("role", "content", "finished")]
    assert reply[-1]["role"] == "assistant" and reply[-1]["finished"] is True
    assert "42" in json.dumps(reply[-1]["content"])

    again = await post(client, sid, text="calculate 6 * 7", client_id="script-1")
    assert (again.status_code, again.json()["started"], again.json()["message"]["sequence"]) == (200, False, 1)
    assert await Message.objects.filter(session_id=sid, role="user", client_id="script-1").acount() == 1


async def test_a_question_is_answered_over_http_with_one_of_its_options(client):
    sid = uuid.uuid4()
    assert (await post(client, sid, text="give me some options")).status_code == 202
    session = await idle(sid)
    assert session.state == "awaiting_input"
    from chat.models import LoopState

    question = await LoopState.objects.aget(session_id=sid)
    refused = await post(client, sid, tool_use_id=question.tool_use_id, choice="Not offered")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_choice")
    answered = await post(client, sid, tool_use_id=question.tool_use_id, choice=question.options[0])
    assert answered.status_code == 202
    assert (await idle(sid)).state == "idle"


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({}, 400, "invalid"),
        ({"text": "hi", "choice": "A"}, 400, "invalid"),
        ({"choice": "A"}, 400, "invalid"),
        ({"text": 5}, 400, "invalid"),
        ({"text": "a\u0000b"}, 400, "invalid"),  # DRF refuses NUL in any text field
        ({"text": "\u200b"}, 400, "empty_message"),
        ({"text": "x" * 30_000}, 400, "text_too_long"),
        ({"text": "hi", "client_id": "has spaces"}, 400, "invalid"),
        ({"tool_use_id": "t", "choice": "A"}, 409, "not_awaiting_input"),
    ],
)
async def test_bad_requests_are_clear_errors_and_create_nothing(client, body, status, code):
    sid = uuid.uuid4()
    response = await post(client, sid, **body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.json()
    assert not await ChatSession.objects.filter(pk=sid).aexists()


async def test_a_busy_chat_answers_409_and_someone_elses_404(client, owner, stranger, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0.05
    sid = uuid.uuid4()
    assert (await post(client, sid, text="tell me a long story please")).status_code == 202
    busy = await post(client, sid, text="and another")
    assert (busy.status_code, busy.json()["code"]) == (409, "busy")
    theirs = AsyncClient()
    await sync_to_async(theirs.force_login)(stranger)
    assert (await post(theirs, sid, text="mine now?")).status_code == 404
    await idle(sid)


async def test_a_posted_message_sends_its_uploaded_files(client, owner):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from chat.attachments import service
    from tests import files

    sid = uuid.uuid4()
    photo = await sync_to_async(service.upload)(owner, sid, SimpleUploadedFile("photo.png", files.image(640, 480)))

    response = await post(client, sid, text="", attachments=[str(photo.pk)])

    assert response.status_code == 202, response.json()
    [block] = response.json()["message"]["content"]
    assert block["source"]["attachment_id"] == str(photo.pk)
    await idle(sid)
    reply = await Message.objects.filter(session_id=sid, role="assistant").afirst()
    assert reply.content[0]["text"].startswith("I got photo.png, a 640×480 image.")


async def test_a_posted_message_with_someone_elses_upload_stores_nothing(client, stranger):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from chat.attachments import service
    from tests import files

    sid = uuid.uuid4()
    theirs = await sync_to_async(service.upload)(stranger, sid, SimpleUploadedFile("p.png", files.image(8, 8)))

    response = await post(client, sid, text="look", attachments=[str(theirs.pk)])

    assert response.status_code == 400 and response.json()["code"] == "unknown_attachment"
    assert not await ChatSession.objects.filter(pk=sid).aexists()
