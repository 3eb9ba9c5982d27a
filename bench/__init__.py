"""Benchmarks: ``bin/bench [name]``. Each prints ratios measured side by side in one run."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentsite.settings")
    import django

    django.setup()


@contextlib.contextmanager
def throwaway_database() -> Iterator[None]:
    """A fresh test database and a Redis key prefix of this run's own, removed afterwards.

    Both are named after ``KEY_PREFIX`` (``<prefix>-bench-<random>``), so that runs of
    several people sharing one PostgreSQL and one Redis can be told apart.
    """
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    prefix = f"{settings.KEY_PREFIX}-bench-{uuid.uuid4().hex[:8]}"
    settings.KEY_PREFIX = prefix
    database = settings.DATABASES["default"]
    name = prefix.replace("-", "_")
    database["TEST"] = {
        **database.get("TEST", {}),
        "NAME": str(settings.VAR_DIR / f"{name}.sqlite3") if "sqlite" in database["ENGINE"] else name,
    }
    old = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        import asyncio

        from channels.db import database_sync_to_async
        from django.db import connections

        # Async code reached the database from asgiref's one sync thread: close that
        # thread's connection, or PostgreSQL refuses to drop the database.
        asyncio.run(database_sync_to_async(connections.close_all)())
        from chat.db import close_pool_connections

        close_pool_connections()
        teardown_databases(old, verbosity=0)
        if settings.REDIS_URL:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL)
            names = list(client.scan_iter(f"{prefix}:*", count=1000))
            if names:
                client.delete(*names)
