"""Builders for test and benchmark data."""

from __future__ import annotations

import uuid
from typing import Any, Callable

from django.db import transaction

from chat import history
from chat.models import Artifact, ArtifactVersion, ChatSession, LoopState, Message


def text(i: int, size: int = 40) -> str:
    return f"message {i} " + "x" * max(0, size - 12)


def tool_turn(tool_use_id: str, *, question: str = "2+2?") -> list[dict[str, Any]]:
    """A user question, a tool call, its result and the final reply: four messages."""
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me calculate."},
                {"type": "tool_use", "id": tool_use_id, "name": "calculate", "input": {"expression": "2+2"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use_id, "content": "4", "display_data": {"x": 1}}
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "It is 4."}]},
    ]


def seed_history(
    owner: Any,
    count: int,
    *,
    session_id: uuid.UUID | None = None,
    content: Callable[[int], Any] = text,
    batch: int = 5000,
) -> ChatSession:
    """A session with ``count`` alternating user/assistant messages, written in bulk.

    Sequences, cumulative sums and the session's counters are exactly what
    ``save_messages`` would have produced, only faster.
    """
    session = ChatSession.objects.create(id=session_id or uuid.uuid4(), owner=owner)
    cumulative = 0
    with transaction.atomic():
        for start in range(1, count + 1, batch):
            rows = []
            for seq in range(start, min(start + batch, count + 1)):
                body = content(seq)
                tokens = history.estimate_tokens(body)
                cumulative += tokens
                rows.append(
                    Message(
                        session=session,
                        sequence=seq,
                        role="user" if seq % 2 else "assistant",
                        content=body,
                        tokens=tokens,
                        cumulative_tokens=cumulative,
                    )
                )
            Message.objects.bulk_create(rows)
        ChatSession.objects.filter(pk=session.pk).update(
            last_sequence=count, message_count=count, total_tokens=cumulative, revision=count
        )
    session.refresh_from_db()
    return session


def seed_messages(owner: Any, messages: list[dict[str, Any]], **session_fields: Any) -> ChatSession:
    """A session holding ``messages`` (roles alternating user/assistant, starting with user)."""
    assert [m["role"] for m in messages] == ["user" if i % 2 == 0 else "assistant" for i in range(len(messages))]
    session = seed_history(owner, len(messages), content=lambda seq: messages[seq - 1]["content"])
    if session_fields:
        ChatSession.objects.filter(pk=session.pk).update(**session_fields)
        session.refresh_from_db()
    return session


def make_artifact(
    session: ChatSession,
    *,
    kind: str = "markdown",
    title: str = "Notes",
    content: str = "# Notes",
    versions: tuple[str, ...] = (),
) -> Artifact:
    """A finished artifact; ``versions`` are its earlier contents, oldest first."""
    artifact = Artifact.objects.create(
        session=session,
        kind=kind,
        title=title,
        content=content,
        version=len(versions) + 1,
        status=Artifact.Status.COMPLETE,
    )
    for number, earlier in enumerate(versions, start=1):
        ArtifactVersion.objects.create(artifact=artifact, version=number, title=title, content=earlier)
    return artifact


def pause_on_question(owner: Any, *, tool_use_id: str = "toolu_choice", other_tool_use_id: str = "toolu_calc") -> ChatSession:
    """A session paused on an interactive question asked beside a finished calculation:
    the last message holds both tool calls, the loop state keeps the calculation's result."""
    session = seed_messages(
        owner,
        [
            {"role": "user", "content": "choose a colour"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": other_tool_use_id, "name": "calculate", "input": {"expression": "1+1"}},
                    {"type": "tool_use", "id": tool_use_id, "name": "propose_options", "input": {"question": "Which?"}},
                ],
            },
        ],
        state=ChatSession.State.AWAITING_INPUT,
    )
    LoopState.objects.create(
        session=session,
        tool_use_id=tool_use_id,
        tool_name="propose_options",
        question="Which colour?",
        options=["red", "green", "blue"],
        pending_results=[
            {"type": "tool_result", "tool_use_id": other_tool_use_id, "content": "2", "display_data": {"x": 1}}
        ],
    )
    return session


async def new_chat(owner: Any) -> uuid.UUID:
    """An empty chat of ``owner`` (a chat's first message through the turn service creates
    it; storage writes need it to exist)."""
    return (await ChatSession.objects.acreate(owner=owner)).pk
