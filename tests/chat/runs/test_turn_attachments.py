"""A message's attachments, checked by the turn service: only the sender's own uploads to
this chat; any refusal stores nothing, creates no chat and leaves the uploads unsent."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.attachments import service
from chat.errors import UserError
from chat.models import Attachment, ChatSession, Message
from chat.runs import turns
from chat.storage import HybridStorage
from tests import files
from tests.chat.storage.conftest import make_cache

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def storage(key_prefix):
    return HybridStorage(cache=make_cache("local"))


async def start(storage, user, sid, text="Look", ids=()):
    return await turns.start_turn(user, sid, turns.SendMessage(text, None, tuple(ids)), storage=storage, worker_id=uuid.uuid4())


async def upload(user, chat_id, name="photo.png", data=None):
    uploaded = SimpleUploadedFile(name, data or files.image(64, 48))
    return (await sync_to_async(service.upload)(user, chat_id, uploaded)).pk


async def nothing_stored(sid, *ids):
    assert not await ChatSession.objects.filter(pk=sid).aexists()
    assert not await Message.objects.filter(session_id=sid).aexists()
    assert not await Attachment.objects.filter(pk__in=ids, sent=True).aexists()


async def test_a_message_with_files_stores_their_blocks_before_its_text(storage, owner):
    sid = uuid.uuid4()
    photo = await upload(owner, sid)
    turn = await start(storage, owner, sid, "What is this?", [photo])

    [ack] = turn.events
    image, text = ack["content"]
    assert (image["type"], image["source"]["attachment_id"], image["source"]["name"]) == ("image", str(photo), "photo.png")
    assert text == {"type": "text", "text": "What is this?"}
    assert (await Attachment.objects.aget(pk=photo)).sent is True


async def test_files_alone_make_a_message_titled_by_their_names(storage, owner):
    sid = uuid.uuid4()
    photo = await upload(owner, sid)
    turn = await start(storage, owner, sid, "", [photo])

    assert [b["type"] for b in turn.events[0]["content"]] == ["image"]
    assert turn.title_from == "photo.png"


async def test_another_users_upload_is_refused(storage, owner, stranger):
    sid = uuid.uuid4()
    theirs = await upload(stranger, sid)

    with pytest.raises(UserError) as refused:
        await start(storage, owner, sid, "Look", [theirs])

    assert refused.value.code == "unknown_attachment" and "not one of your uploads" in refused.value.message
    await nothing_stored(sid, theirs)


async def test_an_upload_to_another_chat_is_refused(storage, owner):
    sid, other = uuid.uuid4(), uuid.uuid4()
    elsewhere = await upload(owner, other)

    with pytest.raises(UserError) as refused:
        await start(storage, owner, sid, "Look", [elsewhere])

    assert refused.value.code == "wrong_chat" and "photo.png" in refused.value.message
    await nothing_stored(sid, elsewhere)


async def test_an_unknown_id_is_refused_and_the_good_ones_stay_unsent(storage, owner):
    sid = uuid.uuid4()
    photo = await upload(owner, sid)

    with pytest.raises(UserError, match="not one of your uploads"):
        await start(storage, owner, sid, "Look", [photo, uuid.uuid4()])
    await nothing_stored(sid, photo)


async def test_more_files_than_a_message_carries_are_refused(storage, owner, settings):
    sid = uuid.uuid4()
    ids = [await upload(owner, sid, f"{i}.png") for i in range(3)]
    settings.ATTACHMENT_MAX_PER_MESSAGE = 2

    with pytest.raises(UserError) as refused:
        await start(storage, owner, sid, "Look", ids)
    assert refused.value.code == "too_many_attachments"
    await nothing_stored(sid, *ids)


async def test_files_over_the_message_size_are_refused(storage, owner, settings):
    sid = uuid.uuid4()
    ids = [await upload(owner, sid, f"{i}.png") for i in range(2)]
    settings.ATTACHMENT_MAX_MESSAGE_BYTES = (await Attachment.objects.aget(pk=ids[0])).size + 1

    with pytest.raises(UserError) as refused:
        await start(storage, owner, sid, "Look", ids)
    assert (refused.value.code, refused.value.status) == ("attachments_too_large", 413)
    await nothing_stored(sid, *ids)


async def test_a_file_listed_twice_is_refused(storage, owner):
    sid = uuid.uuid4()
    photo = await upload(owner, sid)
    with pytest.raises(UserError, match="twice"):
        await start(storage, owner, sid, "Look", [photo, photo])
    await nothing_stored(sid, photo)


async def test_an_edited_message_keeps_its_files(storage, owner):
    from chat import services

    sid = uuid.uuid4()
    photo = await upload(owner, sid)
    turn = await start(storage, owner, sid, "What is this?", [photo])
    await sync_to_async(services.end_run)(sid, turn.run_id, "idle")
    [ack] = turn.events

    edited = await turns.start_turn(
        owner, sid, turns.Edit(uuid.UUID(ack["message_id"]), "And now?"), storage=storage, worker_id=uuid.uuid4()
    )

    message = next(e for e in edited.events if e["type"] == "message")
    image, text = message["content"]
    assert image["source"]["attachment_id"] == str(photo) and text == {"type": "text", "text": "And now?"}
