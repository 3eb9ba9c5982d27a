"""Files sent with a message reach the model: Claude gets base64 image and document blocks
inside the cached prefix (against the fake Messages API); the offline model says what it got."""

from __future__ import annotations

import base64
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from chat import history
from chat.agent.providers.anthropic import AnthropicProvider
from chat.agent.providers.offline import OfflineProvider
from chat.attachments import service
from tests import files
from tests.chat.agent.conftest import collect, of_type, stored_messages, turn
from tests.fakes import anthropic_server as api
from tools.registry import builtin_tools

pytestmark = pytest.mark.django_db(transaction=True)

PHOTO = files.image(640, 480)
REPORT = files.pdf("Quarterly figures rose by a tenth.", "Costs fell.", "Outlook: fair.")


@pytest.fixture
def storage(local_storage):
    return local_storage


@pytest.fixture
def server():
    fake = api.FakeAnthropicServer().start()
    yield fake
    fake.stop()


@pytest.fixture
async def claude(server):
    async def no_wait(seconds):
        pass

    provider = AnthropicProvider(api_key="k", model="claude-test", max_tokens=256, base_url=server.url, sleep=no_wait)
    yield provider
    await provider.aclose()


async def upload(owner, chat_id, name, data):
    attachment = await sync_to_async(service.upload)(owner, uuid.UUID(str(chat_id)), SimpleUploadedFile(name, data))
    return attachment.pk


async def test_claude_is_sent_the_files_as_base64_blocks_inside_the_cached_prefix(manager, claude, server, owner, session_id):
    photo = await upload(owner, session_id, "photo.png", PHOTO)
    report = await upload(owner, session_id, "report.pdf", REPORT)
    notes = await upload(owner, session_id, "notes.md", b"# Notes\nBuy milk.\n")
    server.add(api.stream(api.text_block("A teal square and a report.")), api.stream(api.text_block("Yes.")))

    await collect(turn(manager, claude, builtin_tools(), "What are these?", attachments=[photo, report, notes]))
    await collect(turn(manager, claude, builtin_tools(), "And again?"))

    first, second = server.requests
    sent = first["messages"][0]["content"]
    assert sent[0] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PHOTO).decode()}}
    assert sent[1] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(REPORT).decode()},
        "title": "report.pdf",
    }
    assert sent[2] == {
        "type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "# Notes\nBuy milk.\n"}, "title": "notes.md",
    }
    # The breakpoint is on the text after them: the files are inside the cached prefix.
    assert sent[3] == {"type": "text", "text": "What are these?", "cache_control": {"type": "ephemeral"}}
    # The next call starts with exactly the same bytes (the prefix the cache reads).
    assert second["messages"][0]["content"] == [*sent[:3], {"type": "text", "text": "What are these?"}]


async def test_the_stored_message_holds_references_and_estimates_not_bytes(manager, owner, session_id):
    photo = await upload(owner, session_id, "photo.png", PHOTO)
    report = await upload(owner, session_id, "report.pdf", REPORT)

    await collect(turn(manager, OfflineProvider(word_delay=0), builtin_tools(), "Look", attachments=[photo, report]))

    question, _ = await stored_messages(session_id)
    image, document, text = question["content"]
    assert image["source"]["attachment_id"] == str(photo) and "data" not in image["source"]
    assert (image["source"]["width"], image["source"]["height"], image["source"]["tokens"]) == (640, 480, 410)
    assert document["title"] == "report.pdf" and document["source"]["pages"] == 3
    # Budget loads count the files: 410 for the image, 1,600 a PDF page plus its text.
    assert question["tokens"] == history.estimate_tokens(question["content"]) >= 410 + 3 * 1600
    # What the model is sent has only the API's keys (and the source the provider reads).
    assert history.to_api_messages([question])[0]["content"][0] == {"type": "image", "source": image["source"]}


async def test_the_offline_model_says_what_it_got(manager, owner, session_id):
    photo = await upload(owner, session_id, "photo.png", PHOTO)
    report = await upload(owner, session_id, "report.pdf", REPORT)

    events = await collect(turn(manager, OfflineProvider(word_delay=0), builtin_tools(), "", attachments=[photo, report]))

    reply = "".join(e["text"] for e in of_type(events, "text_delta"))
    assert reply.startswith(
        "I got photo.png, a 640×480 image and report.pdf, 3 pages, starting: “Quarterly figures rose by a tenth. Costs fell. Outlook: fair.”."
    )
    assert "ANTHROPIC_API_KEY" in reply


async def test_the_offline_model_still_does_what_the_text_asks(manager, owner, session_id):
    photo = await upload(owner, session_id, "photo.png", PHOTO)

    events = await collect(turn(manager, OfflineProvider(word_delay=0), builtin_tools(), "calculate 2+2", attachments=[photo]))

    assert "".join(e["text"] for e in of_type(events, "text_delta")).startswith("I got photo.png, a 640×480 image. Let me calculate")
    assert of_type(events, "tool_use")[0]["name"] == "calculate"


async def test_a_file_lost_from_the_storage_is_named_not_fatal(manager, claude, server, owner, session_id, _attachment_storage):
    photo = await upload(owner, session_id, "photo.png", PHOTO)
    for path in _attachment_storage.rglob("*.png"):
        path.unlink()
    server.add(api.stream(api.text_block("Hm.")))

    await collect(turn(manager, claude, builtin_tools(), "See?", attachments=[photo]))

    [body] = server.requests
    assert body["messages"][0]["content"][0] == {"type": "text", "text": "[The attached file photo.png is no longer available.]"}
