"""A whole chat as one file: JSON (messages exactly as stored) or readable Markdown.

Both are produced as a stream of text pieces, reading messages a chunk at a time, so a
chat of 100,000 messages is exported in flat memory.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from chat import selectors
from chat.attachments import blocks
from chat.models import Attachment, ChatSession, Message
from chat.storage import summaries

FORMATS = ("json", "markdown")
# How a message is shown by the API and written in a JSON export.
MESSAGE_FIELDS = (
    "id",
    "branch",
    "sequence",
    "role",
    "content",
    "finished",
    "tokens",
    "tokens_estimated",
    "client_id",
    "usage",
    "context",
    "created_at",
)
CHAT_FIELDS = selectors.SESSION_LIST_FIELDS
ARTIFACT_FIELDS = (
    "id",
    "tool_use_id",
    "kind",
    "title",
    "status",
    "version",
    "content",
    "created_at",
    "updated_at",
)


ATTACHMENT_FIELDS = ("id", "name", "kind", "media_type", "size", "width", "height", "pages", "sent", "created_at")


def _attachments(session: ChatSession) -> list[dict[str, Any]]:
    """The chat's files, listed (what they are, not their bytes: download them by id)."""
    rows = Attachment.objects.filter(chat_id=session.pk, owner_id=session.owner_id).order_by("created_at")
    return [_record(a, ATTACHMENT_FIELDS) for a in rows]


def _record(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def json_chunks(session: ChatSession) -> Iterator[str]:
    """``{"chat": …, "branches": […], "artifacts": […], "summaries": […], "messages": […]}``,
    one message per piece: every message of every branch (``branch`` and ``sequence`` place
    it in the tree; ``branches`` says where each branch forks, ``chat.active_branch`` which
    path is shown); every summary the model was sent instead of a path's first messages."""
    artifacts = [_record(a, ARTIFACT_FIELDS) for a in selectors.artifacts_of(session)]
    chat = _dumps({**_record(session, CHAT_FIELDS), "active_branch": session.active_branch})
    branches = list(session.branches.order_by("number").values("number", "parent", "fork_sequence", "created_at"))
    attachments = _dumps(_attachments(session))
    shown = _dumps(summaries.of_session(session.pk))
    yield (
        f'{{"chat": {chat}, "branches": {_dumps(branches)}, "artifacts": {_dumps(artifacts)}, '
        f'"attachments": {attachments}, "summaries": {shown}, "messages": ['
    )
    for index, message in enumerate(selectors.iter_all_messages(session)):
        yield ("," if index else "") + "\n" + _dumps(_record(message, MESSAGE_FIELDS))
    yield "\n]}\n"


# --- Markdown -------------------------------------------------------------------------------


def _fence(text: str, info: str = "") -> str:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _plain(content: Any) -> str:
    """The readable text of a tool result's content (a string or text/image blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'block')}]")
        return "\n".join(parts)
    return "" if content is None else _dumps(content)


def _label(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("title", "question", "type", "kind"):
            if isinstance(data.get(key), str) and data[key]:
                return data[key]
    return "data"


def _extras(block: dict[str, Any]) -> list[str]:
    """What the UI showed beside a tool result, as one line each."""
    lines = []
    if block.get("display_data") is not None:
        lines.append(f"_Shown in the chat: {_label(block['display_data'])}._")
    interactive = block.get("interactive_data")
    if isinstance(interactive, dict):
        lines.append(f"_Asked: {_label(interactive)}_")
        for option in interactive.get("options") or []:
            lines.append(f"- {_label(option) if isinstance(option, dict) else option}")
    artifact = block.get("artifact_data")
    if isinstance(artifact, dict):
        lines.append(f"_Artifact: {_label(artifact)} ({artifact.get('kind', 'document')})._")
    return lines


def _block_markdown(block: Any, tool_names: dict[str, str]) -> list[str]:
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    if kind == "text":
        return [str(block.get("text", ""))]
    if kind == "tool_use":
        tool_names[str(block.get("id"))] = str(block.get("name", "tool"))
        arguments = json.dumps(block.get("input"), indent=2, ensure_ascii=False)
        return [f"**Tool call:** `{block.get('name', 'tool')}`", _fence(arguments, "json")]
    if kind == "tool_result":
        name = tool_names.get(str(block.get("tool_use_id")), "tool")
        status = " (error)" if block.get("is_error") else ""
        return [f"**Result of `{name}`{status}:**", _fence(_plain(block.get("content"))), *_extras(block)]
    source = blocks.source_of(block)
    if source is not None:
        return [f"_Attached: {blocks.describe(source)}._"]
    if kind == "image":
        return ["[image]"]
    return []  # thinking and other internal blocks are not part of a readable transcript


def _is_tool_results(message: Message) -> bool:
    content = message.content
    return isinstance(content, list) and all(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def _message_markdown(message: Message, tool_names: dict[str, str]) -> str:
    if message.role == "assistant":
        who = "Assistant"
    else:
        who = "Tool results" if _is_tool_results(message) else "You"
    heading = f"## {who} · #{message.sequence} · {message.created_at:%Y-%m-%d %H:%M} UTC"
    if not message.finished:
        heading += " · unfinished"
    content = message.content
    if isinstance(content, str):
        body = [content]
    else:
        body = [part for block in content for part in _block_markdown(block, tool_names)]
    return "\n\n".join([heading, *body]) + "\n\n"


def _summary_markdown(summary: dict[str, Any]) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in summary["text"].splitlines())
    return (
        f"---\n\n**Earlier messages summarised** (the model is sent this summary, written by "
        f"{summary['model']}, instead of messages {summary['first_sequence']}–{summary['last_sequence']}):\n\n"
        f"{quoted}\n\n---\n\n"
    )


def markdown_chunks(session: ChatSession) -> Iterator[str]:
    """A readable transcript: text as written, tool calls and results as labelled blocks."""
    yield f"# {session.title or 'Untitled chat'}\n\n"
    yield (
        f"_Exported {timezone.now():%Y-%m-%d %H:%M} UTC · {session.message_count} messages · "
        f"{session.total_tokens} tokens._\n\n"
    )
    # Results refer to calls by id; a call is always in the message just before its result.
    tool_names: dict[str, str] = {}
    summary = summaries.on_path(session.pk)
    for message in selectors.iter_messages(session):
        if summary is not None and message.sequence > summary["last_sequence"]:
            yield _summary_markdown(summary)
            summary = None
        if message.role == "assistant":
            tool_names = {}
        yield _message_markdown(message, tool_names)
    attachments = _attachments(session)
    for index, attachment in enumerate(attachments):
        if index == 0:
            yield "---\n\n# Attachments\n\n"
        sent = "" if attachment["sent"] else " (not sent)"
        yield f"- {attachment['name']} ({attachment['media_type']}, {attachment['size']:,} bytes){sent}\n"
    if attachments:
        yield "\n"
    for index, artifact in enumerate(selectors.artifacts_of(session)):
        if index == 0:
            yield "---\n\n# Artifacts\n\n"
        yield f"## {artifact.title} ({artifact.kind}, version {artifact.version})\n\n"
        yield f"{_fence(artifact.content)}\n\n"


def chunks(session: ChatSession, export_format: str) -> Iterator[str]:
    return json_chunks(session) if export_format == "json" else markdown_chunks(session)
