"""L2 operations on summaries (``chat.models.Summary``): the one a path uses, and writing
one. Synchronous, like ``chat.storage.database``; ``HybridStorage`` runs them in the
database thread.

A summary is for the path through message (``branch``, ``last_sequence``). The session row
names the newest summary of its active path (``ChatSession.path_summary``): every change
of the path sets it (``chat.storage.tree``) and so does every compaction (``save``,
below), in the same transaction. So the turn reads the summary with the chat's lock, in
the statement it runs anyway (``database.lock_session`` joins it: ``COLUMNS``,
``from_columns``), and always the active path's, whichever process compacted it.
``on_path`` finds it through the path's segments instead: for a compaction, which folds
it into the next one, up to a given message.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

from django.db import connection, transaction
from django.db.models import F
from django.db.models.expressions import Col

from chat.models import ChatSession, Summary
from chat.storage import paths
from chat.storage.tree import newest_summary, segments_of
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


def of_path(session_id: uuid.UUID) -> SummaryData | None:
    """The newest summary of the active path (``ChatSession.path_summary``): one statement."""
    row = Summary.objects.filter(session_id=session_id, id=F("session__path_summary")).values(*_FIELDS).first()
    return None if row is None else _as_data(row)


def columns(alias: str) -> str:
    """The summary's columns for a SELECT that joins the table as ``alias`` (read back by
    ``from_columns``)."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(Summary._meta.get_field(name).column)}" for name in _FIELDS)


def from_columns(values: Sequence[Any]) -> SummaryData | None:
    """A summary from the values of ``columns`` as the database driver returns them (None:
    the join found none)."""
    if values[0] is None:
        return None
    row: dict[str, Any] = {}
    for name, value in zip(_FIELDS, values):
        column = Col(Summary._meta.db_table, Summary._meta.get_field(name))
        for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
            value = convert(value, column, connection)
        row[name] = value
    for name in ("id", "previous_id"):  # SQLite has no UUID type
        if row[name] is not None and not isinstance(row[name], uuid.UUID):
            row[name] = uuid.UUID(str(row[name]))
    return _as_data(row)


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
        # The session row names its active path's newest summary: this one, if it is on
        # the path (a compaction runs with the chat claimed, so the path has not moved).
        session = ChatSession.objects.values("active_branch", "last_sequence").get(id=session_id)
        segments = segments_of(session_id, session["active_branch"])
        ChatSession.objects.filter(id=session_id).update(
            path_summary=newest_summary(session_id, segments, session["last_sequence"])
        )
        if charge is not None:
            ledger.record(charge)
    return _as_data({name: getattr(summary, name) for name in _FIELDS})


def of_session(session_id: uuid.UUID) -> list[SummaryData]:
    """Every summary of the chat, on every branch, oldest first (admin, exports)."""
    return [_as_data(row) for row in Summary.objects.filter(session_id=session_id).order_by("created_at").values(*_FIELDS)]
