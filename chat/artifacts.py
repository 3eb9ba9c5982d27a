"""The one writer of artifacts: documents, code, diagrams the agent produces beside the chat.

An artifact is written in steps (``start`` or ``revise``, ``write`` as it grows, then
``finish`` or ``fail``), so a page opened while it is produced shows how far it got.
Revising keeps the previous content as an ``ArtifactVersion``.

SVG and HTML are stored exactly as the model wrote them. They may carry scripts or event
handlers: whatever renders them must sanitise them (nh3) or show them in a sandboxed
frame, never insert them into the page as they are.

Synchronous functions for views and the API; the ``a``-prefixed ones for async callers.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from chat.db import db_async
from chat.errors import NotFound
from chat.models import Artifact, ArtifactVersion

KINDS = ("markdown", "code", "mermaid", "svg", "html", "text")
MAX_CONTENT_LENGTH = 200_000


def _artifact_id(artifact_id: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(artifact_id))
    except ValueError:
        raise NotFound("No such artifact.") from None


def start(
    session_id: Any, *, kind: str, title: str, tool_use_id: str = "", artifact_id: uuid.UUID | None = None
) -> Artifact:
    """A new, empty artifact being generated (with ``artifact_id`` if given: a caller that
    chose it can still find the artifact when it never heard this call's answer)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return Artifact.objects.create(
        id=artifact_id or uuid.uuid4(),
        session_id=session_id,
        kind=kind,
        title=title,
        tool_use_id=tool_use_id,
        status=Artifact.Status.GENERATING,
    )


def revise(session_id: Any, artifact_id: Any, *, kind: str, title: str, tool_use_id: str = "") -> Artifact:
    """Start a new version of one of the session's artifacts; the current one is kept."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    with transaction.atomic():
        # Locked so that two revisions at once cannot both save the same version number.
        artifact = (
            Artifact.objects.select_for_update().filter(id=_artifact_id(artifact_id), session_id=session_id).first()
        )
        if artifact is None:
            raise NotFound("No such artifact in this chat.")
        ArtifactVersion.objects.create(
            artifact=artifact, version=artifact.version, title=artifact.title, content=artifact.content
        )
        artifact.version += 1
        artifact.kind, artifact.title, artifact.tool_use_id = kind, title, tool_use_id
        artifact.content, artifact.status = "", Artifact.Status.GENERATING
        artifact.save()
    return artifact


def write(artifact_id: Any, content: str) -> None:
    """Store the content produced so far."""
    Artifact.objects.filter(id=artifact_id).update(content=content)


def finish(artifact_id: Any, content: str) -> Artifact:
    artifact = Artifact.objects.get(id=artifact_id)
    artifact.content, artifact.status = content, Artifact.Status.COMPLETE
    artifact.save(update_fields=["content", "status", "updated_at"])
    return artifact


def fail(artifact_id: Any) -> None:
    """Mark an artifact being generated failed (one that is not, or does not exist, is left)."""
    Artifact.objects.filter(id=artifact_id, status=Artifact.Status.GENERATING).update(status=Artifact.Status.FAILED)


def event(artifact: Artifact, *, content: str | None = None, progress: float | None = None) -> dict[str, Any]:
    """The websocket ``artifact`` event for the artifact's current state."""
    data: dict[str, Any] = {
        "type": "artifact",
        "artifact_id": str(artifact.id),
        "kind": artifact.kind,
        "title": artifact.title,
        "status": str(artifact.status),
        "version": artifact.version,
        "tool_use_id": artifact.tool_use_id,
    }
    if progress is not None:
        data["progress"] = round(progress, 3)
    if content is not None:
        data["content"] = content
    return data


astart = db_async(start)
arevise = db_async(revise)
awrite = db_async(write)
afinish = db_async(finish)
afail = db_async(fail)
