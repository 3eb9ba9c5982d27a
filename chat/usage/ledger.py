"""The usage ledger: one row per model call, in the transaction of what the call produced.

A reply's row goes with the statement that stores the finished reply (or, on a cancel or a
failure, what was streamed of it, with the usage known so far); a title's with the title.
Each row has a key naming the call (the run and the step of a reply; the chat and the
attempt of a title): the INSERT does nothing if the key is stored already, so a save that
is retried, or a cancel that lands while the finished reply is being saved, never counts
a call twice.

On PostgreSQL the INSERT rides in the UPDATE that locks the chat for the save (a
data-modifying WITH): no extra round trip per reply. SQLite has no such WITH; there it is
a statement of its own, in the same transaction (an in-process call, not a round trip).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from django.db import connection, transaction
from django.utils import timezone

from chat.models import UsageRecord
from chat.usage import prices

_COLUMNS = (
    "key",
    "user_id",
    "session_id",
    "run_id",
    "kind",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "tool_calls",
    "cost_micros",
    "billed",
    "partial",
    "created_at",
)
_FIELDS = tuple((name, UsageRecord._meta.get_field("user" if name == "user_id" else name)) for name in _COLUMNS)


@dataclass(frozen=True)
class Charge:
    """One model call, as the ledger stores it."""

    key: str
    user_id: int
    session_id: uuid.UUID | None
    run_id: uuid.UUID | None
    kind: str
    model: str
    usage: Mapping[str, int]
    tool_calls: int = 0
    billed: bool = False
    partial: bool = False
    created_at: dt.datetime = field(default_factory=timezone.now)

    @property
    def cost_micros(self) -> int:
        return prices.cost_micros(self.model, self.usage)

    def row(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "run_id": self.run_id,
            "kind": self.kind,
            "model": self.model,
            "input_tokens": int(self.usage.get("input_tokens", 0)),
            "output_tokens": int(self.usage.get("output_tokens", 0)),
            "cache_read_tokens": int(self.usage.get("cache_read_tokens", 0)),
            "cache_write_tokens": int(self.usage.get("cache_write_tokens", 0)),
            "tool_calls": self.tool_calls,
            "cost_micros": self.cost_micros,
            "billed": self.billed,
            "partial": self.partial,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Payer:
    """Who a run's model calls are charged to, and how (``chat.usage.quotas`` decided)."""

    user_id: int
    session_id: uuid.UUID | None
    run_id: uuid.UUID
    billed: bool = False

    def reply(self, step: int, model: str, usage: Mapping[str, int], *, tool_calls: int = 0, partial: bool = False) -> Charge:
        return self.call(UsageRecord.Kind.REPLY, reply_key(self.run_id, step), model, usage, tool_calls=tool_calls, partial=partial)

    def call(self, kind: str, key: str, model: str, usage: Mapping[str, int], **details: Any) -> Charge:
        """Any call of the run (a summary: kind ``summary``, a key naming what it wrote)."""
        return Charge(
            key=key,
            user_id=self.user_id,
            session_id=self.session_id,
            run_id=self.run_id,
            kind=kind,
            model=model,
            usage=usage,
            billed=self.billed,
            **details,
        )


def reply_key(run_id: uuid.UUID, step: int) -> str:
    return f"reply:{run_id}:{step}"


def title_key(session_id: Any, attempt: int) -> str:
    return f"title:{session_id}:{attempt}"


@functools.lru_cache(maxsize=4)
def _insert(vendor: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for _, f in _FIELDS)
    placeholders = ", ".join(["%s"] * len(_FIELDS))
    return (
        f"INSERT INTO {quote(UsageRecord._meta.db_table)} ({columns}) VALUES ({placeholders})"
        f" ON CONFLICT ({quote('key')}) DO NOTHING"
    )


def insert_sql(charge: Charge) -> tuple[str, list[Any]]:
    """The INSERT of ``charge``'s row, doing nothing if its key is stored already."""
    row = charge.row()
    return _insert(connection.vendor), [f.get_db_prep_value(row[name], connection) for name, f in _FIELDS]


def with_charge(sql: str, params: list[Any], charge: Charge | None) -> tuple[str, list[Any]]:
    """``sql`` (an UPDATE inside the caller's transaction) made to write ``charge`` too: as
    a WITH in front of it where the database can (PostgreSQL), else by running the INSERT
    now, in the same transaction."""
    if charge is None:
        return sql, params
    insert, insert_params = insert_sql(charge)
    if connection.vendor == "postgresql":
        return f"WITH usage_row AS ({insert}) {sql}", [*insert_params, *params]
    with connection.cursor() as cursor:
        cursor.execute(insert, insert_params)
    return sql, params


def record(charge: Charge) -> bool:
    """Write ``charge`` on its own (a call that produced nothing stored: a reply cancelled
    before its first word). False if its key was stored already."""
    insert, params = insert_sql(charge)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert, params)
        return cursor.rowcount > 0
