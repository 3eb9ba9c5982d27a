"""GET /api/v1/chats/<id>/export/?format=json|markdown"""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from tests.chat.api.checks import assert_error
from tests.factories import make_artifact, seed_history, seed_messages

pytestmark = pytest.mark.django_db


def url(chat_id) -> str:
    return f"/api/v1/chats/{chat_id}/export/"


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_json_export_holds_the_chat_its_artifacts_and_every_message_as_stored(as_owner, chat):
    make_artifact(chat, title="Notes", content="# hi")

    response = as_owner.get(url(chat.pk), {"format": "json"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="Sums-')
    assert response["Content-Disposition"].endswith('.json"')
    exported = json.loads(body(response))
    assert exported["chat"]["id"] == str(chat.pk)
    assert exported["chat"]["title"] == "Sums"
    assert [a["content"] for a in exported["artifacts"]] == ["# hi"]
    messages = exported["messages"]
    assert [m["sequence"] for m in messages] == [1, 2, 3, 4]
    # Same messages, same shape as the messages endpoint.
    api = as_owner.get(f"/api/v1/chats/{chat.pk}/messages/").json()["results"]
    assert [m["content"] for m in messages] == [m["content"] for m in api]
    assert set(messages[0]) == set(api[0]) - {"versions"}  # versions are the API's view of the tree


def test_json_is_the_default_format(as_owner, chat):
    response = as_owner.get(url(chat.pk))
    assert json.loads(body(response))["chat"]["title"] == "Sums"


def test_json_export_of_a_long_chat_is_read_in_chunks_and_complete(as_owner, owner):
    session = seed_history(owner, 1234)
    exported = json.loads(body(as_owner.get(url(session.pk))))
    assert [m["sequence"] for m in exported["messages"]] == list(range(1, 1235))


def test_markdown_export_reads_as_a_transcript(as_owner, chat):
    make_artifact(chat, kind="code:python", title="fib", content="def fib(): ...")

    response = as_owner.get(url(chat.pk), {"format": "markdown"})
    text = body(response)

    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"].endswith('.md"')
    assert text.startswith("# Sums\n")
    assert "## You · #1" in text and "2+2?" in text
    assert "**Tool call:** `calculate`" in text
    assert '"expression": "2+2"' in text
    assert "## Tool results · #3" in text
    assert "**Result of `calculate`:**\n\n```\n4\n```" in text
    assert "## Assistant · #4" in text and "It is 4." in text
    assert "# Artifacts" in text and "def fib(): ..." in text


def test_markdown_fences_outlast_backticks_in_the_content(as_owner, owner):
    session = seed_messages(
        owner,
        [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "run", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "a ``` b", "is_error": True}]},
        ],
    )
    text = body(as_owner.get(url(session.pk), {"format": "markdown"}))
    assert "**Result of `run` (error):**\n\n````\na ``` b\n````" in text


def test_someone_elses_export_is_404(as_stranger, chat):
    assert_error(as_stranger.get(url(chat.pk)), 404, "not_found")


def test_export_anonymous_is_401(anonymous, chat):
    assert_error(anonymous.get(url(chat.pk)), 401)


@pytest.mark.parametrize("export_format", ["xml", "", "JSON"])
def test_an_unknown_format_is_400(as_owner, chat, export_format):
    body = assert_error(as_owner.get(url(chat.pk), {"format": export_format}), 400, "invalid")
    assert body["message"].startswith("format:")


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_streams_asynchronously(owner):
    """Django reads a sync iterator to its end before sending under ASGI; the export hands
    it an async one that reads the database a chunk at a time."""
    from asgiref.sync import sync_to_async

    session = await sync_to_async(seed_history)(owner, 1200)
    client = AsyncClient()
    await sync_to_async(client.force_login)(owner)

    response = await client.get(url(session.pk))

    assert response.is_async
    pieces = [piece async for piece in response.streaming_content]
    exported = json.loads(b"".join(pieces))
    assert len(exported["messages"]) == 1200


def test_exports_include_the_summaries_and_the_markdown_shows_where_the_summary_takes_over(as_owner, chat):
    from chat.models import Summary

    Summary.objects.create(
        session=chat, branch=0, last_sequence=2, last_cumulative=20, text="The user asked for a sum.\nIt was 4.",
        tokens=12, model="offline-demo",
    )
    exported = json.loads(body(as_owner.get(url(chat.pk), {"format": "json"})))
    [summary] = exported["summaries"]
    assert (summary["last_sequence"], summary["branch"], summary["text"]) == (2, 0, "The user asked for a sum.\nIt was 4.")
    markdown = body(as_owner.get(url(chat.pk), {"format": "markdown"}))
    divider = markdown.index("**Earlier messages summarised**")
    assert markdown.index("· #2 ·") < divider < markdown.index("· #3 ·")
    assert "> The user asked for a sum.\n> It was 4." in markdown
    assert "instead of messages 1–2" in markdown
