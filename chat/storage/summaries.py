"""L2 operations on summaries (``chat.models.Summary``): the newest one a path can use,
and writing one. Synchronous, like ``chat.storage.database``; ``HybridStorage`` runs them
in the database thread.

A summary is for the path through message (``branch``, ``last_sequence``). Two lookups:

- ``in_window``: the newest summary whose last message is among ``messages`` (a budget
  window of the active path, which names each message's branch): one index range per
  branch the window crosses, no read of the tree. While a summary is in use the window
  always reaches back to its last message (what follows it is kept under the budget), so
  this is the lookup of every run.
- ``on_path``: the newest summary anywhere on the active path, read through the path's
  segments: for a compaction, which folds it into the next one whatever the window holds.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

from django.db import transaction
from django.db.models import Q

from chat.models import ChatSession, Summary
from chat.storage import paths
from chat.storage.tree import segments_of
from chat.usage import ledger
from chat.usage.ledger import Charge

SummaryData = dict[str, Any]

_FIELDS = (
    "id",
    "branch",
    "first_sequence",
    "last_sequence",
    "last_cumulative",
    "text",
    "tokens",
    "model",
    "usage",
    "previous_id",
    "created_at",
)


def _as_data(row: dict[str, Any]) -> SummaryData:
    return {
        **row,
        "id": str(row["id"]),
        "previous_id": str(row["previous_id"]) if row["previous_id"] else None,
        "created_at": row["created_at"].isoformat(),
    }


def in_window(session_id: uuid.UUID, messages: Sequence[dict[str, Any]]) -> SummaryData | None:
    """The newest summary whose last message is one of ``messages`` (messages of one path)."""
    if not messages:
        return None
    ranges: dict[int, list[int]] = {}
    for message in messages:
        low_high = ranges.setdefault(message["branch"], [message["sequence"], message["sequence"]])
        low_high[0] = min(low_high[0], message["sequence"])
        low_high[1] = max(low_high[1], message["sequence"])
    condition = Q()
    for branch, (low, high) in ranges.items():
        condition |= Q(branch=branch, last_sequence__gte=low, last_sequence__lte=high)
    row = Summary.objects.filter(condition, session_id=session_id).order_by("-last_sequence").values(*_FIELDS).first()
    return None if row is None else _as_data(row)


def on_path(session_id: uuid.UUID, *, before: int | None = None) -> SummaryData | None:
    """The newest summary of the active path (covering messages before ``before`` only)."""
    session = ChatSession.objects.values("active_branch", "last_sequence").get(id=session_id)
    upto = session["last_sequence"] if before is None else min(before - 1, session["last_sequence"])
    segments = segments_of(session_id, session["active_branch"])
    ranges = paths.after_sequence(segments, 0, upto=upto, field="last_sequence")
    row = Summary.objects.filter(ranges, session_id=session_id).order_by("-last_sequence").values(*_FIELDS).first()
    return None if row is None else _as_data(row)


def save(session_id: uuid.UUID, *, charge: Charge | None = None, **fields: Any) -> SummaryData:
    """Store a summary (``chat.models.Summary``'s fields, ``previous`` by id) and, in the
    same transaction, the usage-ledger row of the call that wrote it."""
    with transaction.atomic():
        summary = Summary.objects.create(session_id=session_id, **fields)
        if charge is not None:
            ledger.record(charge)
    return _as_data({name: getattr(summary, name) for name in _FIELDS})


def of_session(session_id: uuid.UUID) -> list[SummaryData]:
    """Every summary of the chat, on every branch, oldest first (admin, exports)."""
    return [_as_data(row) for row in Summary.objects.filter(session_id=session_id).order_by("created_at").values(*_FIELDS)]
