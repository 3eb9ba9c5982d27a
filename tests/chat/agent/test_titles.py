"""Titles are made in the background from the first message, stored, and published."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.agent import titles
from chat.agent.providers.base import ProviderError
from chat.agent.providers.offline import OfflineProvider
from chat.models import ChatSession
from chat.services import create_session, rename_session
from tests.chat.agent.conftest import turn
from tests.fakes.scripted import ScriptedProvider, say
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def storage(local_storage):
    return local_storage

FIRST = "how do I plan a week of hiking in the Alps?"


@pytest.fixture
async def chat(owner):
    return await database_sync_to_async(create_session)(owner)


@pytest.fixture
def published():
    return []


@pytest.fixture
def publish(published):
    async def publish(event):
        published.append(event)

    return publish


async def title_of(chat) -> str:
    return (await ChatSession.objects.aget(pk=chat.pk)).title


async def test_the_offline_model_titles_a_chat_from_its_first_message(chat, publish, published):
    title = await titles.generate_title(chat.pk, FIRST, OfflineProvider(word_delay=0), publish)

    assert title == "How do I plan a week of hiking in the Alps?"
    assert await title_of(chat) == title
    assert published == [{"type": "title", "title": title}]


async def test_a_failed_attempt_is_retried_once(chat, publish, published):
    model = ScriptedProvider(titles=[ProviderError("model_overloaded", "Busy.", retryable=True), '"Hiking the Alps."'])
    title = await titles.generate_title(chat.pk, FIRST, model, publish, retry_delay=0)

    assert title == "Hiking the Alps"
    assert model.title_calls == [FIRST, FIRST]
    assert published == [{"type": "title", "title": "Hiking the Alps"}]


async def test_two_failures_leave_the_chat_untitled_without_raising(chat, publish, published):
    model = ScriptedProvider(titles=[RuntimeError("down"), ProviderError("model_overloaded", "Busy.", retryable=True), "late"])
    assert await titles.generate_title(chat.pk, FIRST, model, publish, retry_delay=0) is None

    assert len(model.title_calls) == 2
    assert await title_of(chat) == ""
    assert published == []


async def test_an_empty_title_counts_as_a_failure(chat, publish):
    model = ScriptedProvider(titles=['""', "Alps"])
    assert await titles.generate_title(chat.pk, FIRST, model, publish, retry_delay=0) == "Alps"


async def test_a_title_the_owner_chose_is_never_overwritten(chat, owner, publish, published):
    await database_sync_to_async(rename_session)(owner, chat.pk, "My trip")
    assert await titles.generate_title(chat.pk, FIRST, OfflineProvider(word_delay=0), publish) is None
    assert await title_of(chat) == "My trip"
    assert published == []


async def test_the_title_never_holds_up_the_reply(manager, session_id, publish, published):
    release = asyncio.Event()

    class SlowTitles(OfflineProvider):
        async def title(self, text):
            await release.wait()
            return "Slow title"

    model = ScriptedProvider(say("Here is a plan."))
    task = None
    async for event in turn(manager, model, builtin_tools(), FIRST):
        if event["type"] == "message" and event["sequence"] == 1:
            task = titles.schedule_title(session_id, FIRST, SlowTitles(word_delay=0), publish)
    assert event["type"] == "complete"  # the reply finished while the title was still pending
    assert not task.done() and published == []

    release.set()
    assert await task == "Slow title"
    assert published == [{"type": "title", "title": "Slow title"}]


async def test_a_scheduled_title_is_stored_and_published(chat, publish, published):
    title = "How do I plan a week of hiking in the Alps?"
    assert await titles.schedule_title(chat.pk, FIRST, OfflineProvider(word_delay=0), publish) == title
    assert published == [{"type": "title", "title": title}]


@pytest.mark.parametrize(
    "raw, clean",
    [
        ('"Hiking the Alps."', "Hiking the Alps"),
        ("Title: **Alpine hiking plan**\n\nThis chat is about…", "Alpine hiking plan"),
        ("  # A   week  in the   mountains!  ", "A week in the mountains"),
        ("word " * 40, ("word " * 16).strip()),
        ("", ""),
        # Punctuation of the title itself stays; only marks around all of it go.
        ("Calculate 1/0", "Calculate 1/0"),
        ('Say "hi" to Bob.', 'Say "hi" to Bob'),
        ('"Quoted" and "more"', '"Quoted" and "more"'),
        ("`ls -la` explained", "`ls -la` explained"),
        ("*What is 2+2?*", "What is 2+2?"),
        ("## C++ vs. C#", "C++ vs. C#"),
    ],
)
def test_the_models_answer_is_cleaned_into_a_title(raw, clean):
    assert titles.clean(raw) == clean
