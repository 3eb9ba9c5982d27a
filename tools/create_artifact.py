"""create_artifact: a document, code file, diagram or image shown in the artifact panel.

The artifact is produced while the chat goes on: it is stored as it grows, in a few
chunks, and each chunk sends an ``artifact`` event with the progress so far, so the panel
fills visibly and a page opened meanwhile shows how far it got. Given an ``artifact_id``
the tool revises that artifact: a new version, the earlier content kept.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

from django.conf import settings

from chat import artifacts
from chat.errors import NotFound
from chat.models import Artifact
from tools.registry import Tool, ToolContext, ToolError, ToolKind

MAX_TITLE_LENGTH = 200
CHUNKS = 8


def _validated(tool_input: dict[str, Any]) -> tuple[str, str, str, str | None]:
    kind, title, content = tool_input.get("kind"), tool_input.get("title"), tool_input.get("content")
    artifact_id = tool_input.get("artifact_id")
    if kind not in artifacts.KINDS:
        raise ToolError(f"kind must be one of {', '.join(artifacts.KINDS)}, not {kind!r}.")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_LENGTH:
        raise ToolError(f"title must be non-empty text of at most {MAX_TITLE_LENGTH} characters.")
    if not isinstance(content, str) or not content.strip():
        raise ToolError("content must be non-empty text.")
    if len(content) > artifacts.MAX_CONTENT_LENGTH:
        raise ToolError(f"content must be at most {artifacts.MAX_CONTENT_LENGTH} characters.")
    if artifact_id is not None and not isinstance(artifact_id, str):
        raise ToolError("artifact_id must be the id of an artifact of this chat.")
    return kind, title.strip(), content, artifact_id


def chunks(content: str, count: int = CHUNKS) -> list[str]:
    """``content`` in about ``count`` pieces, cut at line ends where there are any."""
    size = max(1, math.ceil(len(content) / count))
    pieces, start = [], 0
    while start < len(content):
        end = min(len(content), start + size)
        newline = content.find("\n", end)
        if newline != -1 and newline - end < size:
            end = newline + 1
        pieces.append(content[start:end])
        start = end
    return pieces


async def run(tool_input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    kind, title, content, artifact_id = _validated(tool_input)
    # Chosen here, so that a cancellation that lands while the row is being written (the
    # call's answer is then lost) still knows which artifact to mark failed.
    try:
        target = uuid.UUID(artifact_id) if artifact_id else uuid.uuid4()
    except ValueError:
        raise ToolError(f"There is no artifact {artifact_id!r} in this chat.") from None
    artifact: Artifact | None = None
    try:
        if artifact_id:
            try:
                artifact = await artifacts.arevise(
                    context.session_id, artifact_id, kind=kind, title=title, tool_use_id=context.tool_use_id
                )
            except NotFound:
                raise ToolError(f"There is no artifact {artifact_id!r} in this chat.") from None
        else:
            artifact = await artifacts.astart(
                context.session_id, kind=kind, title=title, tool_use_id=context.tool_use_id, artifact_id=target
            )
        await context.emit(artifacts.event(artifact, progress=0.0, content=""))
        written = ""
        pieces = chunks(content)
        for index, piece in enumerate(pieces, start=1):
            await asyncio.sleep(settings.ARTIFACT_CHUNK_DELAY)
            written += piece
            if index < len(pieces):
                await artifacts.awrite(artifact.pk, written)
                await context.emit(artifacts.event(artifact, progress=index / len(pieces), content=written))
        artifact = await artifacts.afinish(artifact.pk, content)
    except ToolError:
        raise  # nothing was started
    except BaseException:
        # Shielded: a cancelled or timed-out call must still not leave the artifact
        # "generating" forever.
        await asyncio.shield(artifacts.afail(target))
        if artifact is not None:
            artifact.status = Artifact.Status.FAILED
            await asyncio.shield(context.emit(artifacts.event(artifact)))
        raise
    await context.emit(artifacts.event(artifact, progress=1.0, content=content))
    verb = "Revised" if artifact_id else "Created"
    return {
        "content": (
            f'{verb} the {kind} artifact "{title}" (artifact_id {artifact.pk}, version {artifact.version}); '
            "the user sees it in the artifact panel."
        ),
        "artifact_data": {
            "artifact_id": str(artifact.pk),
            "kind": kind,
            "title": title,
            "version": artifact.version,
            "status": str(artifact.status),
        },
    }


TOOL = Tool(
    name="create_artifact",
    description=(
        "Create a document, code file, mermaid diagram, SVG image or HTML page the user sees in a "
        "separate panel and can download. Use it for anything longer than a few paragraphs or "
        "meant to be kept. To change an existing artifact, pass its artifact_id and the full new "
        "content: a new version is made and the old one kept."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": list(artifacts.KINDS)},
            "title": {"type": "string", "description": "A short title; for code, a file name such as fib.py."},
            "content": {"type": "string", "description": "The complete content."},
            "artifact_id": {"type": "string", "description": "Only to revise an existing artifact."},
        },
        "required": ["kind", "title", "content"],
    },
    run=run,
    kind=ToolKind.ARTIFACT,
    # Writing a large artifact in visible steps takes longer than an ordinary tool call.
    timeout=120.0,
)
