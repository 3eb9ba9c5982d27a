"""ORM work from async code, on a pool of database threads.

Channels' ``database_sync_to_async`` runs every ORM call of a process in one thread, so
with many sessions streaming at once their queries queue behind each other. Our ORM calls
are self-contained (each function opens and commits its own transactions), so they can
run side by side: each pool thread keeps its own connection (``CONN_MAX_AGE``), closed
when it is broken or too old, as Channels does, before and after every call.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.DB_THREADS, thread_name_prefix="agentsite-db")
        return _executor


# When this process last saw the database fail (monotonic; 0: never): a call on a pool
# thread, an HTTP request, or the worker's heartbeat, which notices any outage longer than
# a beat. Each thread's connection is then checked once, before its next use: a connection
# PostgreSQL closed when it went away would otherwise fail the first query made on it once
# it is back. (Django's CONN_HEALTH_CHECKS would cost a query on every use instead.)
_failed_at = 0.0
_checked = threading.local()


def database_failed() -> None:
    global _failed_at
    _failed_at = time.monotonic()


def replace_broken_connection(**_: Any) -> None:
    """Close this thread's connection if it broke since the database last failed (also a
    ``request_started`` receiver: HTTP requests run on threads of their own)."""
    if not _failed_at or getattr(_checked, "at", 0.0) >= _failed_at:
        return
    _checked.at = time.monotonic()
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def db_async(fn: Callable[..., R]) -> Callable[..., Awaitable[R]]:
    """``fn`` as a coroutine function that runs on the database thread pool."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> R:
        replace_broken_connection()
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            database_failed()
            raise

    return DatabaseSyncToAsync(call, thread_sensitive=False, executor=_pool())


def on_every_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` once in each pool thread (to reach each thread's own connection)."""
    pool = _pool()
    workers = settings.DB_THREADS
    # Every thread takes one task and waits at the barrier until all have one.
    barrier = threading.Barrier(workers)

    def run() -> None:
        barrier.wait(timeout=30)
        fn()

    for future in [pool.submit(run) for _ in range(workers)]:
        future.result()


def close_pool_connections() -> None:
    """Close the connection of every pool thread (before a test database is dropped)."""
    on_every_thread(connections.close_all)
