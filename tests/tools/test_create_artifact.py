"""create_artifact: written in visible steps, stored, and versioned when revised."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async

from chat import artifacts
from chat.models import Artifact, ArtifactVersion
from chat.services import create_session
from tools import create_artifact
from tools.registry import ToolContext, ToolError

pytestmark = pytest.mark.django_db(transaction=True)

DOC = "# Title\n\n" + "".join(f"Line {i} of the document.\n" for i in range(40))


@pytest.fixture
async def chat(owner):
    return await database_sync_to_async(create_session)(owner)


@pytest.fixture
def context(chat, owner, emitted):
    return ToolContext(session_id=str(chat.pk), user=owner, tool_use_id="toolu_art", emit=emitted)


async def test_an_artifact_is_written_in_steps_with_progress_events(context, emitted, chat):
    result = await create_artifact.run({"kind": "markdown", "title": "Notes", "content": DOC}, context)

    artifact = await Artifact.objects.aget(session_id=chat.pk)
    assert (artifact.kind, artifact.title, artifact.status, artifact.version) == ("markdown", "Notes", "complete", 1)
    assert artifact.content == DOC and artifact.tool_use_id == "toolu_art"
    progress = [e["progress"] for e in emitted.events]
    assert progress[0] == 0 and progress[-1] == 1 and progress == sorted(progress) and len(progress) > 3
    assert all(e["type"] == "artifact" and e["artifact_id"] == str(artifact.pk) for e in emitted.events)
    assert [e["status"] for e in emitted.events] == ["generating"] * (len(progress) - 1) + ["complete"]
    # Each step carries the content so far: a growing prefix of the document.
    assert all(DOC.startswith(e["content"]) for e in emitted.events)
    assert emitted.events[-1]["content"] == DOC
    assert result["artifact_data"] == {
        "artifact_id": str(artifact.pk), "kind": "markdown", "title": "Notes", "version": 1, "status": "complete"
    }
    assert str(artifact.pk) in result["content"]


async def test_revising_keeps_the_earlier_content_as_a_version(context, chat):
    first = await create_artifact.run({"kind": "code", "title": "a.py", "content": "print(1)\n"}, context)
    artifact_id = first["artifact_data"]["artifact_id"]
    second = await create_artifact.run(
        {"kind": "code", "title": "a.py", "content": "print(2)\n", "artifact_id": artifact_id}, context
    )

    artifact = await Artifact.objects.aget(pk=artifact_id)
    assert (artifact.version, artifact.content) == (2, "print(2)\n")
    assert second["artifact_data"]["version"] == 2
    assert second["content"].startswith('Revised the code artifact "a.py"')
    versions = [(v.version, v.content) async for v in ArtifactVersion.objects.filter(artifact=artifact)]
    assert versions == [(1, "print(1)\n")]
    assert await Artifact.objects.filter(session_id=chat.pk).acount() == 1


async def test_svg_is_stored_exactly_as_given(context):
    svg = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    result = await create_artifact.run({"kind": "svg", "title": "Pic", "content": svg}, context)
    artifact = await Artifact.objects.aget(pk=result["artifact_data"]["artifact_id"])
    assert artifact.content == svg  # sanitising is the renderer's job (see chat.artifacts)


async def test_another_chats_artifact_cannot_be_revised(context, owner, stranger):
    theirs = await database_sync_to_async(create_session)(stranger)
    other = await database_sync_to_async(artifacts.start)(theirs.pk, kind="markdown", title="Theirs")
    for artifact_id in (str(other.pk), str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(ToolError, match="There is no artifact"):
            await create_artifact.run({"kind": "markdown", "title": "X", "content": "mine", "artifact_id": artifact_id}, context)
    assert (await Artifact.objects.aget(pk=other.pk)).version == 1


@pytest.mark.parametrize(
    "tool_input, message",
    [
        ({"kind": "pdf", "title": "T", "content": "x"}, "kind must be one of"),
        ({"kind": "markdown", "title": "", "content": "x"}, "title must be non-empty"),
        ({"kind": "markdown", "title": "T", "content": "  "}, "content must be non-empty"),
        ({"kind": "markdown", "title": "T", "content": "x" * 200_001}, "content must be at most"),
        ({"kind": "markdown", "title": "T", "content": "x", "artifact_id": 5}, "artifact_id must be"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(tool_input, message, context, chat):
    with pytest.raises(ToolError, match=message):
        await create_artifact.run(tool_input, context)
    assert await Artifact.objects.filter(session_id=chat.pk).acount() == 0


async def test_a_failure_while_writing_marks_the_artifact_failed(context, emitted, chat, monkeypatch):
    async def broken_write(artifact_id, content):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts, "awrite", broken_write)
    with pytest.raises(OSError):
        await create_artifact.run({"kind": "markdown", "title": "Notes", "content": DOC}, context)

    artifact = await Artifact.objects.aget(session_id=chat.pk)
    assert artifact.status == "failed"
    assert emitted.events[-1]["status"] == "failed"


async def test_a_cancelled_artifact_is_marked_failed(context, chat, settings):
    settings.ARTIFACT_CHUNK_DELAY = 60
    task = asyncio.ensure_future(create_artifact.run({"kind": "markdown", "title": "Notes", "content": DOC}, context))
    while not await Artifact.objects.filter(session_id=chat.pk).aexists():
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await Artifact.objects.aget(session_id=chat.pk)).status == "failed"


async def test_a_cancel_that_lands_as_the_artifact_is_created_still_marks_it_failed(context, chat, monkeypatch):
    # The row is written by a database thread; a cancellation arriving before the coroutine
    # hears back loses the call's answer (asgiref raises CancelledError, the row exists).
    real_start = artifacts.astart

    async def start_then_cancelled(*args, **kwargs):
        await real_start(*args, **kwargs)
        raise asyncio.CancelledError

    monkeypatch.setattr(artifacts, "astart", start_then_cancelled)
    with pytest.raises(asyncio.CancelledError):
        await create_artifact.run({"kind": "markdown", "title": "Notes", "content": DOC}, context)
    assert (await Artifact.objects.aget(session_id=chat.pk)).status == "failed"


async def test_a_revision_that_never_started_leaves_the_artifact_as_it_was(context, chat, monkeypatch):
    done = await create_artifact.run({"kind": "markdown", "title": "Notes", "content": DOC}, context)
    artifact_id = done["artifact_data"]["artifact_id"]

    async def cancelled_before_it_ran(*args, **kwargs):
        raise asyncio.CancelledError

    monkeypatch.setattr(artifacts, "arevise", cancelled_before_it_ran)
    with pytest.raises(asyncio.CancelledError):
        await create_artifact.run({"kind": "markdown", "title": "Notes 2", "content": "new", "artifact_id": artifact_id}, context)
    artifact = await Artifact.objects.aget(pk=artifact_id)
    assert (artifact.status, artifact.version, artifact.content) == ("complete", 1, DOC)


async def test_an_artifact_id_that_is_not_an_id_is_a_tool_error(context, chat):
    with pytest.raises(ToolError, match="no artifact"):
        await create_artifact.run({"kind": "markdown", "title": "T", "content": "x", "artifact_id": "not-a-uuid"}, context)
    assert not await Artifact.objects.filter(session_id=chat.pk).aexists()


def test_content_is_cut_into_chunks_at_line_ends():
    pieces = create_artifact.chunks(DOC)
    assert "".join(pieces) == DOC
    assert 4 <= len(pieces) <= 9
    assert all(piece.endswith("\n") for piece in pieces[:-1])
    assert create_artifact.chunks("abc") == ["a", "b", "c"]
