"""A page of search hits: ranked, with a cursor to the next page and marked snippets.

Ranking mixes relevance with recency: a hit's score is ln(relevance) + age in e-folds of
``HALF_LIFE`` / ln 2, so a message ``HALF_LIFE`` older needs twice the relevance to rank
the same. The candidates are the user's newest ``CANDIDATES`` matching messages (and as
many chats by title), so a word that is everywhere costs what a rare one does; what lies
beyond them is found by a more precise query. Pages follow (score, key) downwards.

A hit on a message says whether that message is on the conversation its chat shows now (a
message of another version is found too); the UI switches the chat to it before showing it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat.search.document import START, STOP
from chat.search.index import backend
from chat.search.query import SearchQuery
from chat.storage import paths, tree

CANDIDATES = 1000
HALF_LIFE = dt.timedelta(days=30).total_seconds()


@dataclass(frozen=True)
class Position:
    """Where a page ends: the last hit's score and key (a message's or a chat's id)."""

    score: float
    key: uuid.UUID


@dataclass(frozen=True)
class Page:
    hits: list[dict[str, Any]]
    next: Position | None


def search(owner: Any, query: SearchQuery, *, after: Position | None = None, limit: int = 20) -> Page:
    """The owner's hits for ``query``, best first, ``limit`` at a time after ``after``."""
    if not query.finds_anything:
        return Page([], None)
    rows = backend().search(
        owner.pk,
        query,
        window=CANDIDATES,
        after=(after.score, str(after.key)) if after else None,
        limit=limit + 1,
        half_life=HALF_LIFE,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    _place_on_paths(rows)
    hits = [_hit(row) for row in rows]
    last = rows[-1] if rows else None
    return Page(hits, Position(last["score"], uuid.UUID(last["key"])) if more and last else None)


def _hit(row: dict[str, Any]) -> dict[str, Any]:
    message = row["message"]
    if message is not None:
        message = {**message, "id": str(message["id"]), "created_at": _aware(message["created_at"])}
    return {
        "chat": {"id": str(row["chat_id"]), "title": row["chat_title"]},
        "message": message,
        "snippet": fragments(row["headline"]),
    }


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite, read without the ORM
        value = parse_datetime(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, dt.timezone.utc)


def _place_on_paths(rows: list[dict[str, Any]]) -> None:
    """Mark each message hit ``on_active_path``: one read of the branch row per chat with
    forks among the hits; nothing to read for a chat that never forked."""
    segments: dict[Any, tuple[paths.Segment, ...]] = {}
    for row in rows:
        message = row["message"]
        if message is None:
            continue
        if message["sequence"] > row["last_sequence"]:
            message["on_active_path"] = False
            continue
        if not row["branch_count"]:
            message["on_active_path"] = True
            continue
        chat = row["chat_id"]
        if chat not in segments:
            segments[chat] = tree.segments_of(_as_uuid(chat), row["active_branch"])
        try:
            message["on_active_path"] = paths.holder(segments[chat], message["sequence"]) == message["branch"]
        except ValueError:
            message["on_active_path"] = False


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def fragments(headline: str) -> list[dict[str, Any]]:
    """A snippet as text fragments, the matched words marked: ``[{text, match}]``. Built as
    data, never HTML, so no text in a message can become markup wherever it is shown."""
    out: list[dict[str, Any]] = []
    text = " ".join(headline.split())
    for i, piece in enumerate(text.split(START)):
        matched, _, rest = piece.partition(STOP) if i else ("", "", piece)
        for part, match in ((matched, True), (rest, False)):
            if not part:
                continue
            if out and out[-1]["match"] == match:
                out[-1]["text"] += part
            else:
                out.append({"text": part, "match": match})
    return out

