"""L2 operations on a chat's tree: forking the active path, switching it, a message's
versions, and the path through a message. See ``chat.models.Branch`` for the shape.

Run inside the caller's transaction, with the session row locked (the turn service's
``lock_session``), except the reads. Every change of the active path bumps the session's
revision, so a cached tail of the old path can never be served for the new one
(``HybridStorage.path_changed``), and names the new path's newest summary in the session
row (``ChatSession.path_summary``, in the same UPDATE), so the summary in use is always
the active path's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, Subquery, UUIDField, Value
from django.utils import timezone

from chat.errors import NotFound
from chat.models import Branch, ChatSession, Message, Summary
from chat.storage import paths
from chat.storage.paths import Segment


@dataclass(frozen=True)
class Located:
    """A message of the chat, and whether it is on the active path."""

    id: uuid.UUID
    branch: int
    sequence: int
    role: str
    content: Any
    on_active_path: bool


def locate(session_id: uuid.UUID, message_id: uuid.UUID) -> Located:
    """The message (NotFound if it is not this chat's), placed relative to the active path."""
    row = (
        Message.objects.filter(id=message_id, session_id=session_id)
        .values("id", "branch", "sequence", "role", "content", "session__active_branch", "session__last_sequence")
        .first()
    )
    if row is None:
        raise NotFound("No such message in this chat.")
    segments = segments_of(session_id, row["session__active_branch"])
    on_path = row["sequence"] <= row["session__last_sequence"] and _holds(segments, row["branch"], row["sequence"])
    return Located(row["id"], row["branch"], row["sequence"], row["role"], row["content"], on_path)


def segments_of(session_id: uuid.UUID, branch: int) -> tuple[Segment, ...]:
    if branch == 0:
        return paths.ROOT
    data = Branch.objects.filter(session_id=session_id, number=branch).values_list("segments", flat=True).first()
    if data is None:
        raise NotFound(f"No branch {branch} in this chat.")
    return paths.from_json(data)


def newest_summary(session_id: uuid.UUID, segments: tuple[Segment, ...], upto: int) -> Subquery | Value:
    """The id of the newest summary of the path ``segments`` up to message ``upto``, as a
    subquery (one index range per segment): what ``ChatSession.path_summary`` names."""
    if upto < 1 or not segments:
        # No message, no summary (and an empty filter would make Django skip the UPDATE).
        return Value(None, output_field=UUIDField())
    ranges = paths.after_sequence(segments, 0, upto=upto, field="last_sequence")
    return Subquery(Summary.objects.filter(ranges, session_id=session_id).order_by("-last_sequence").values("id")[:1])


def _holds(segments: tuple[Segment, ...], branch: int, sequence: int) -> bool:
    try:
        return paths.holder(segments, sequence) == branch
    except ValueError:
        return False


def fork(session_id: uuid.UUID, after: int) -> int:
    """Start a branch that continues the active path after its message ``after`` and make
    it the active one (empty: what is saved next goes on it). Returns its number."""
    session = ChatSession.objects.values("active_branch", "branch_count").get(id=session_id)
    segments = segments_of(session_id, session["active_branch"])
    holder = paths.holder(segments, after) if after else 0
    cumulative = 0
    if after:
        cumulative = Message.objects.values_list("cumulative_tokens", flat=True).get(
            session_id=session_id, branch=holder, sequence=after
        )
    now = timezone.now()
    if session["branch_count"] == 0:
        # The first path gets its row with the first fork: switching back needs its
        # selection time.
        Branch.objects.create(
            session_id=session_id,
            number=0,
            parent=0,
            fork_sequence=0,
            fork_cumulative=0,
            segments=paths.to_json(paths.ROOT),
            selected_at=now,
        )
    number = session["branch_count"] + 1
    new_path = paths.forked(segments, after, cumulative, number)
    Branch.objects.create(
        session_id=session_id,
        number=number,
        parent=holder,
        fork_sequence=after,
        fork_cumulative=cumulative,
        segments=paths.to_json(new_path),
        selected_at=now,
    )
    ChatSession.objects.filter(id=session_id).update(
        active_branch=number,
        branch_count=number,
        last_sequence=after,
        total_tokens=cumulative,
        revision=F("revision") + 1,
        updated_at=now,
        path_summary=newest_summary(session_id, new_path, after),
    )
    return number


def switch(session_id: uuid.UUID, to: Located) -> int:
    """Make the active path the one through message ``to``, down to the leaf the user chose
    last below it. Returns the new revision."""
    branches = {b["number"]: b for b in Branch.objects.filter(session_id=session_id).values()}
    chosen = to.branch
    if branches:
        below = _subtree(branches, to.branch, to.sequence)
        chosen = max(below, key=lambda number: branches[number]["selected_at"])
        Branch.objects.filter(session_id=session_id, number=chosen).update(selected_at=timezone.now())
    leaf = (
        Message.objects.filter(session_id=session_id, branch=chosen)
        .order_by("-sequence")
        .values("sequence", "cumulative_tokens")
        .first()
    )
    if leaf is None:  # an empty branch (its first reply never began): the path ends at its fork
        leaf = {"sequence": branches[chosen]["fork_sequence"], "cumulative_tokens": branches[chosen]["fork_cumulative"]}
    segments = paths.from_json(branches[chosen]["segments"]) if branches else paths.ROOT
    ChatSession.objects.filter(id=session_id).update(
        active_branch=chosen,
        last_sequence=leaf["sequence"],
        total_tokens=leaf["cumulative_tokens"],
        revision=F("revision") + 1,
        updated_at=timezone.now(),
        path_summary=newest_summary(session_id, segments, leaf["sequence"]),
    )
    return ChatSession.objects.values_list("revision", flat=True).get(id=session_id)


def _subtree(branches: dict[int, dict[str, Any]], branch: int, sequence: int) -> set[int]:
    """The branches whose paths go through message ``sequence`` of ``branch``."""
    found, frontier = {branch}, [(branch, sequence)]
    while frontier:
        parent, at = frontier.pop()
        for number, row in branches.items():
            if number != parent and row["parent"] == parent and row["fork_sequence"] >= at and number not in found:
                found.add(number)
                frontier.append((number, 0))
    return found


@dataclass(frozen=True)
class Versions:
    """A message's place among the other versions of it (same place, same previous message)."""

    index: int  # 1-based, oldest first
    ids: list[uuid.UUID]

    @property
    def count(self) -> int:
        return len(self.ids)


def versions(session_id: uuid.UUID, messages: list[dict[str, Any]]) -> dict[Any, Versions]:
    """The versions of each of ``messages`` (stored dicts or rows with id, branch,
    sequence) that has some: a chat without forks costs one query, one with forks two."""
    forks = list(Branch.objects.filter(session_id=session_id).exclude(number=0).values("number", "parent", "fork_sequence"))
    if not forks:
        return {}
    by_point: dict[tuple[int, int], list[int]] = {}
    first_of: dict[int, tuple[int, int]] = {}
    for row in forks:
        by_point.setdefault((row["parent"], row["fork_sequence"]), []).append(row["number"])
        first_of[row["number"]] = (row["parent"], row["fork_sequence"])
    wanted: dict[Any, tuple[int, int]] = {}
    for message in messages:
        branch, sequence = message["branch"], message["sequence"]
        # The point this message continues: its fork if it is its branch's first message.
        point = first_of[branch] if branch in first_of and first_of[branch][1] == sequence - 1 else (branch, sequence - 1)
        if point in by_point:
            wanted[message["id"]] = point
    if not wanted:
        return {}
    condition = Q()
    for parent, at in set(wanted.values()):
        condition |= Q(sequence=at + 1) & (Q(branch=parent) | Q(branch__in=by_point[(parent, at)]))
    rows = Message.objects.filter(condition, session_id=session_id).order_by("created_at", "branch").values(
        "id", "branch", "sequence"
    )
    groups: dict[tuple[int, int], list[uuid.UUID]] = {}
    for row in rows:
        point = first_of[row["branch"]] if row["branch"] in first_of and first_of[row["branch"]][1] == row["sequence"] - 1 else (row["branch"], row["sequence"] - 1)
        groups.setdefault(point, []).append(row["id"])
    out = {}
    for message_id, point in wanted.items():
        ids = groups.get(point, [])
        key = uuid.UUID(str(message_id))
        if len(ids) > 1 and key in ids:
            out[message_id] = Versions(ids.index(key) + 1, ids)
    return out


def path_through(session_id: uuid.UUID, to: Located) -> list[dict[str, Any]]:
    """The messages of the path from the first message to ``to``, oldest first."""
    segments = segments_of(session_id, to.branch)
    return list(
        Message.objects.filter(paths.after_sequence(segments, 0, upto=to.sequence), session_id=session_id)
        .order_by("sequence")
        .values()
    )
