"""Counting the SQL that async code runs, on every database thread it may use."""

from __future__ import annotations

import contextlib
import threading
from typing import AsyncIterator

from asgiref.sync import sync_to_async
from django.db import connection

from chat.db import on_every_thread

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")


@contextlib.asynccontextmanager
async def counting_queries() -> AsyncIterator[list[str]]:
    """Yields the list the data statements run inside the block are appended to.

    Transaction control is left out: it is explicit SQL on SQLite only.
    """
    queries: list[str] = []
    lock = threading.Lock()

    def count(execute, sql, params, many, context):
        if not sql.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            with lock:
                queries.append(sql)
        return execute(sql, params, many, context)

    def install() -> None:
        connection.execute_wrappers.append(count)

    def uninstall() -> None:
        if count in connection.execute_wrappers:
            connection.execute_wrappers.remove(count)

    await sync_to_async(on_every_thread)(install)
    try:
        yield queries
    finally:
        await sync_to_async(on_every_thread)(uninstall)
