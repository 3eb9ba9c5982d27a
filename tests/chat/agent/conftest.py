from __future__ import annotations

import uuid
from contextlib import aclosing

import pytest
from channels.db import database_sync_to_async

from chat import history, services
from chat.agent.loop import run_turn
from chat.message_manager import MessageManager
from chat.models import ChatSession
from chat.runs import turns
from chat.storage import HybridStorage, database
from tests.chat.storage.conftest import CACHE_KINDS, make_cache
from tests.chat.test_history import assert_valid


@pytest.fixture(params=CACHE_KINDS)
def storage(request, key_prefix):
    """Storage over each L1 backend: the loop must behave the same over both."""
    return HybridStorage(cache=make_cache(request.param))


@pytest.fixture
def local_storage(key_prefix):
    """Storage over the in-process L1 only, for tests about something other than storage."""
    return HybridStorage(cache=make_cache("local"))


@pytest.fixture
def session_id(owner, transactional_db):
    """The owner's chat, created empty (as a chat's first message through the turn service
    creates it), so that tests can build a history in it directly."""
    return ChatSession.objects.create(owner=owner).pk


@pytest.fixture
def manager(session_id, owner, storage):
    """A MessageManager without injections, so tests see exactly what the model is sent."""
    return MessageManager(session_id, owner, storage=storage, injections=())


async def collect(events) -> list[dict]:
    return [event async for event in events]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


async def stored_messages(session_id) -> list[dict]:
    """Every stored message of the session, straight from the database."""
    snapshot = await database_sync_to_async(database.load_recent)(session_id, 10**9)
    return snapshot.messages


async def assert_history_valid(session_id) -> list[dict]:
    """The stored history, rebuilt for the model, is one the Messages API accepts."""
    api = history.to_api_messages(await stored_messages(session_id))
    assert_valid(api)
    return api


_ENDINGS = {"complete": "idle", "awaiting_user_input": "awaiting_input", "error": "failed"}


async def turn(manager, model, tools, text=None, *, client_id=None, tool_use_id=None, choice=None, attachments=(), **options):
    """One whole turn as the run manager runs it, without the run manager: the turn service
    takes ``text`` (a message, or the typed answer to an open question) or ``choice``, the
    loop answers, and the run's claim is released with the state its last event implies.
    Yields the turn's own events (the stored message) and then the loop's."""
    action = turns.Choose(tool_use_id, choice) if choice is not None else turns.SendMessage(text, client_id, tuple(attachments))
    begun = await turns.start_turn(
        manager.user, uuid.UUID(manager.session_id), action, storage=manager.storage, worker_id=uuid.uuid4()
    )
    if isinstance(begun, turns.Acknowledged):
        yield begun.event
        return
    state = "idle"
    try:
        for event in begun.events:
            yield event
        async with aclosing(run_turn(manager, model, tools, step=begun.step, reply=begun.reply, **options)) as loop_events:
            async for event in loop_events:
                state = _ENDINGS.get(event["type"], state)
                yield event
    finally:
        await database_sync_to_async(services.end_run)(begun.chat.session_id, begun.run_id, state)
