"""A quota error reaches the user the same way through every door: the websocket's error
frame and the API's JSON both say `quota_exceeded` and when it resets; nothing is stored."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from chat.models import ChatSession, Message, UsageLimit, UsageRecord
from tests.chat.test_consumers import connect, reply, send

pytestmark = pytest.mark.django_db(transaction=True)


def over_the_limit(user) -> None:
    UsageLimit.objects.create(user=user, tokens_per_day=100)
    UsageRecord.objects.create(
        key=f"test:{uuid.uuid4()}", user=user, kind="reply", model="claude-sonnet-4-5", input_tokens=100,
        created_at=timezone.now(),
    )


def next_midnight() -> str:
    today = timezone.now().astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today + dt.timedelta(days=1)).isoformat()


async def test_a_message_over_quota_gets_an_error_frame_saying_when_it_resets(owner):
    await sync_to_async(over_the_limit)(owner)
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    await send(communicator, type="user_message", text="hello")
    frame = await reply(communicator)

    assert (frame["type"], frame["code"], frame["retryable"]) == ("error", "quota_exceeded", False)
    assert frame["resets_at"] == next_midnight()
    assert "resets at" in frame["message"]
    assert not await ChatSession.objects.filter(pk=sid).aexists()
    await communicator.disconnect()


async def test_a_message_posted_over_quota_is_a_429_saying_when_it_resets(owner):
    await sync_to_async(over_the_limit)(owner)
    client = AsyncClient()
    await sync_to_async(client.force_login)(owner)
    chat = await sync_to_async(ChatSession.objects.create)(owner=owner)
    response = await client.post(
        f"/api/v1/chats/{chat.pk}/messages/", data=json.dumps({"text": "hello"}), content_type="application/json"
    )

    assert response.status_code == 429
    assert response.json() == {
        "code": "quota_exceeded", "message": response.json()["message"], "resets_at": next_midnight()
    }
    assert await Message.objects.filter(session_id=chat.pk).acount() == 0


async def test_compacting_over_quota_is_refused_the_same_way_and_changes_nothing(owner):
    """A summary is a model call: a user over a limit cannot start one either."""
    sid = uuid.uuid4()
    communicator, _ = await connect(owner, sid)
    for text in ("first question", "second question"):
        await send(communicator, type="user_message", text=text)
        while (await communicator.receive_json_from(timeout=10))["type"] != "complete":
            pass
    before = [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("sequence", "content")]
    await sync_to_async(over_the_limit)(owner)
    await send(communicator, type="compact")
    frame = await reply(communicator)

    assert (frame["type"], frame["code"]) == ("error", "quota_exceeded")
    assert frame["resets_at"] == next_midnight()
    assert [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("sequence", "content")] == before
    assert (await ChatSession.objects.aget(pk=sid)).state == ChatSession.State.IDLE
    await communicator.disconnect()
