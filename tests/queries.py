"""Counting the SQL that async code runs, on every database thread it may use."""

from __future__ import annotations

import contextlib
import threading
from typing import AsyncIterator, Iterator

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


@contextlib.contextmanager
def counting_redis_commands() -> Iterator[list[str]]:
    """Yields the list every Redis command the process's async clients send inside the block
    is appended to (a pipeline's commands one by one, a script as its EVALSHA)."""
    from chat.redis_client import AsyncBreakerRedis, _BreakerPipeline

    commands: list[str] = []
    execute, pipeline = AsyncBreakerRedis.execute_command, _BreakerPipeline.execute

    async def counted_execute(self, *args, **options):
        commands.append(str(args[0]))
        return await execute(self, *args, **options)

    async def counted_pipeline(self, raise_on_error=True):
        commands.extend(str(command[0][0]) for command in self.command_stack)
        return await pipeline(self, raise_on_error)

    AsyncBreakerRedis.execute_command = counted_execute  # type: ignore[method-assign]
    _BreakerPipeline.execute = counted_pipeline  # type: ignore[method-assign]
    try:
        yield commands
    finally:
        AsyncBreakerRedis.execute_command = execute  # type: ignore[method-assign]
        _BreakerPipeline.execute = pipeline  # type: ignore[method-assign]
