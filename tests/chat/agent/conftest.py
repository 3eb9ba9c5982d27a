from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async

from chat import history
from chat.message_manager import MessageManager
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
def session_id():
    return uuid.uuid4()


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
