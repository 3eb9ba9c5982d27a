"""ORM work from async code, on a pool of database threads.

Channels' ``database_sync_to_async`` runs every ORM call of a process in one thread, so
with many sessions streaming at once their queries queue behind each other. Our ORM calls
are self-contained (each function opens and commits its own transactions), so they can
run side by side: each pool thread keeps its own connection (``CONN_MAX_AGE``), closed
when it is broken or too old, as Channels does, before and after every call.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import connections

R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.DB_THREADS, thread_name_prefix="agentsite-db")
        return _executor


def db_async(fn: Callable[..., R]) -> Callable[..., Awaitable[R]]:
    """``fn`` as a coroutine function that runs on the database thread pool."""
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=_pool())


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
