"""A websocket ``user_message`` with ``attachments``: the same turn as the API's, refused
with an error frame (nothing stored) when an id is not the sender's upload to this chat."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.attachments import service
from chat.models import ChatSession, Message
from tests import files
from tests.chat.test_consumers import _isolated, connect, send, text_of, until  # noqa: F401 - _isolated closes sockets

pytestmark = pytest.mark.django_db(transaction=True)


async def upload(user, sid, name="photo.png"):
    return str((await sync_to_async(service.upload)(user, sid, SimpleUploadedFile(name, files.image(640, 480)))).pk)


async def test_files_sent_over_the_socket_are_stored_and_acknowledged(owner, settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0
    sid = uuid.uuid4()
    photo = await upload(owner, sid)
    communicator, _ = await connect(owner, sid)

    await send(communicator, type="user_message", text="", attachments=[photo], client_id="c-1")
    frames = await until(communicator, "complete", "error")

    [ack] = [f for f in frames if f["type"] == "message" and f["role"] == "user"]
    assert ack["content"][0]["source"]["attachment_id"] == photo and ack["client_id"] == "c-1"
    assert text_of(frames).startswith("I got photo.png, a 640×480 image.")


async def test_someone_elses_upload_is_an_error_frame_and_nothing_is_stored(owner, stranger):
    sid = uuid.uuid4()
    theirs = await upload(stranger, sid)
    communicator, _ = await connect(owner, sid)

    await send(communicator, type="user_message", text="look", attachments=[theirs])
    [error] = await until(communicator, "error")

    assert (error["code"], error["retryable"]) == ("unknown_attachment", False)
    assert "id" not in error
    assert not await ChatSession.objects.filter(pk=sid).aexists()
    assert not await Message.objects.filter(session_id=sid).aexists()
