"""MessageManager: what the model is sent, and the prompt-cache breakpoint."""

from __future__ import annotations

import uuid

import pytest

from chat.message_manager import MessageManager
from chat.storage import HybridStorage
from tests.chat.storage.conftest import make_cache

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def manager(owner):
    return MessageManager(uuid.uuid4(), owner, storage=HybridStorage(cache=make_cache("local")))


async def test_the_cache_breakpoint_goes_on_the_last_stored_block_before_the_time_note(manager):
    await manager.add_user_message([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])

    [sent] = manager.to_api_messages(cache_breakpoint=True)
    assert sent["content"][:2] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}},
    ]
    assert sent["content"][2]["text"].startswith("<context>Current time:")
    assert "cache_control" not in sent["content"][2]
    assert manager.messages[0]["content"][1] == {"type": "text", "text": "b"}  # stored content untouched


async def test_without_a_breakpoint_nothing_is_marked(manager):
    await manager.add_user_message("hello")
    [sent] = manager.to_api_messages()
    assert not any("cache_control" in block for block in sent["content"])
