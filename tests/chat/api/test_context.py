"""A chat's context over HTTP: the meter's figures, and compaction on demand through the
turn service (refused while busy, for strangers, and with nothing to summarise)."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from chat.models import ChatSession, Message, Summary
from tests.chat.api.test_turns import idle, post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def client(owner):
    client = AsyncClient()
    await sync_to_async(client.force_login)(owner)
    return client


async def context(client, sid):
    response = await client.get(f"/api/v1/chats/{sid}/context/")
    assert response.status_code == 200, response.content
    return response.json()


async def compact(client, sid):
    return await client.post(f"/api/v1/chats/{sid}/compact/", data="{}", content_type="application/json")


async def test_the_meter_counts_the_next_prompt_and_compact_summarises_all_but_the_newest_turn(client, settings):
    settings.CHAT_CONTEXT_TOKENS, settings.CHAT_COMPACT_AT = 10_000, 0.8
    sid = uuid.uuid4()
    for text in ("hello there", "calculate 2 + 3", "and one more"):
        assert (await post(client, sid, text=text)).status_code == 202
        await idle(sid)
    before = await context(client, sid)
    assert (before["window"], before["compact_at"], before["summary"]) == (10_000, 8_000, None)
    assert before["prompt_tokens"] == before["path_tokens"] > 0

    response = await compact(client, sid)
    assert response.status_code == 202, response.content
    await idle(sid)
    after = await context(client, sid)
    summary = after["summary"]
    assert summary["model"] == "offline-demo" and summary["first_sequence"] == 1
    assert "The user wrote: “hello there”" in summary["text"]
    assert after["path_tokens"] == before["path_tokens"]  # nothing stored changed
    session = await ChatSession.objects.aget(pk=sid)
    assert session.state == "idle" and summary["last_sequence"] == session.last_sequence - 2
    assert after["prompt_tokens"] == summary["tokens"] + sum_newest_turn(await messages(sid))


async def messages(sid):
    return [m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("tokens")]


def sum_newest_turn(rows):
    return rows[-2]["tokens"] + rows[-1]["tokens"]


async def test_compact_is_refused_while_busy_with_one_turn_and_for_a_stranger(client, owner, stranger):
    sid = uuid.uuid4()
    assert (await post(client, sid, text="hello")).status_code == 202
    await idle(sid)
    refused = await compact(client, sid)
    assert (refused.status_code, refused.json()["code"]) == (409, "nothing_to_compact")
    assert (await post(client, sid, text="again")).status_code == 202
    await idle(sid)
    await ChatSession.objects.filter(pk=sid).aupdate(state="running", run_id=uuid.uuid4())
    busy = await compact(client, sid)
    assert (busy.status_code, busy.json()["code"]) == (409, "busy")
    await ChatSession.objects.filter(pk=sid).aupdate(state="idle", run_id=None)
    other = AsyncClient()
    await sync_to_async(other.force_login)(stranger)
    assert (await compact(other, sid)).status_code == 404
    assert (await other.get(f"/api/v1/chats/{sid}/context/")).status_code == 404
    assert (await compact(client, uuid.uuid4())).status_code == 404
    assert not await Summary.objects.filter(session_id=sid).aexists()


async def test_context_of_a_message_typed_past_the_window_says_its_size(client, settings):
    sid = uuid.uuid4()
    assert (await post(client, sid, text="x" * 4_000)).status_code == 202
    await idle(sid)
    settings.CHAT_CONTEXT_TOKENS = 500  # the window shrank since
    state = await context(client, sid)
    assert state["prompt_tokens"] > state["window"]
    json.dumps(state)
