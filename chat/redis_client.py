"""Async Redis clients for the project's own Redis work (message cache, event log).

redis.asyncio connections belong to the event loop that opened them (daphne runs one per
process; tests run one per test), so each loop gets its own client. Timeouts are short
and retries off: a caller that cannot reach Redis must learn it within one timeout.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings


class PerLoopRedis:
    def __init__(self, url: str, *, socket_timeout: float, connect_timeout: float, max_connections: int = 500):
        self.url = url
        self.max_connections = max_connections
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(cls) -> PerLoopRedis:
        return cls(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
            max_connections=settings.REDIS_MAX_CONNECTIONS,
        )

    @property
    def deadline(self) -> float:
        """The longest one command may take, as a backstop to the socket timeouts."""
        return self.connect_timeout + 2 * self.socket_timeout

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # A burst beyond max_connections waits (up to one socket timeout) for a free
            # connection instead of failing at once.
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=self.socket_timeout,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            client = Redis(connection_pool=pool)
            self._clients[loop] = client
        return client
