"""The process's Redis: its clients, and one breaker that every use of Redis shares.

redis.asyncio connections belong to the event loop that opened them (daphne runs one per
process; tests run one per test; ``async_to_sync`` in a plain thread runs a loop of its
own), so ``SharedRedis`` keeps one client, with one pool, per loop. Timeouts are short: a
caller that cannot reach Redis must learn it within one timeout.

A hung or dead Redis must cost one timeout per process per ``REDIS_RETRY_INTERVAL``, not
one per request: the first failure of any use (message cache, event log, rate limit, the
hub's subscription, Django's cache behind the API throttles) opens ``BREAKER``, and until
it closes every use fails at once with ``RedisUnavailable`` (a ``ConnectionError``, so
whatever handles an outage handles it). After a Redis restart the pooled connections
are dead: a command that meets one is retried once on a fresh connection, so the first
requests after Redis comes back do not fail.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from redis.asyncio.client import Pipeline
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# What a use of Redis catches as "Redis is away".
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


class RedisUnavailable(RedisConnectionError):
    """Redis failed a moment ago: not tried again until the breaker's interval is over."""


class Breaker:
    """Open for ``REDIS_RETRY_INTERVAL`` seconds after a failure; logged once per outage.

    A failure while other commands were still succeeding a moment ago is not an outage:
    under load a process's own event loop can make a command miss its timeout though Redis
    answered at once. Only a failure with no success in the last ``QUIET`` seconds (a
    Redis that is gone or hung answers nobody) opens it.
    """

    QUIET = 1.0

    def __init__(self) -> None:
        self._open_until = 0.0
        self._succeeded_at = 0.0
        self._healthy = True
        self._lock = threading.Lock()

    def check(self) -> None:
        if time.monotonic() < self._open_until:
            raise RedisUnavailable("Redis failed a moment ago; not tried again yet")

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._succeeded_at < self.QUIET:
            logger.debug("a Redis command failed while others succeed: %s", exc)
            return
        with self._lock:
            self._open_until = now + settings.REDIS_RETRY_INTERVAL
            was_healthy, self._healthy = self._healthy, False
        if was_healthy:
            logger.warning(
                "Redis unavailable (%s: %s): the cache is bypassed, events reach only this "
                "process's sockets, and Redis is tried again every %ss.",
                type(exc).__name__,
                exc,
                settings.REDIS_RETRY_INTERVAL,
            )

    def succeeded(self) -> None:
        self._succeeded_at = time.monotonic()
        if not self._healthy:
            with self._lock:
                was_down, self._healthy = not self._healthy, True
            if was_down:
                logger.warning("Redis is reachable again.")

    def reset(self) -> None:
        with self._lock:
            self._open_until, self._succeeded_at, self._healthy = 0.0, 0.0, True


BREAKER = Breaker()


def _retry_once_on_a_fresh_connection() -> Any:
    from redis.retry import Retry

    # A ConnectionError (a pooled connection Redis closed) is retried once, reconnecting;
    # a timeout is not: a hung Redis would cost two.
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _async_retry() -> Any:
    from redis.asyncio.retry import Retry

    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _guarded(exc: BaseException) -> bool:
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)) and not isinstance(
        exc, RedisUnavailable
    )


class BreakerRedis(redis.Redis):
    """redis-py's client behind the breaker: Django's cache (``CLIENT_CLASS`` options)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        BREAKER.check()
        try:
            result = super().execute_command(*args, **options)
        except Exception as exc:
            if _guarded(exc):
                BREAKER.failed(exc)
            raise
        BREAKER.succeeded()
        return result


class _BreakerPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        BREAKER.check()
        try:
            result = await super().execute(raise_on_error)
        except Exception as exc:
            if _guarded(exc):
                BREAKER.failed(exc)
            raise
        BREAKER.succeeded()
        return result


class AsyncBreakerRedis(redis.asyncio.Redis):
    """redis.asyncio's client behind the breaker, whose commands travel in batches: the
    commands any task of the loop issues in one iteration of it go to Redis together, in
    one pipeline (one write, one read), and each caller gets its own reply or error.

    Under load (hundreds of chats starting and streaming at once) that turns hundreds of
    round trips into a few: a command alone costs this process about 60 µs of CPU (the
    client's machinery and the socket calls of its round trip), more than Redis takes to
    run it; in a batch of a hundred, 11 µs. A lone command waits only for the end of the
    loop's current iteration. A blocking command (BLPOP, XREAD
    BLOCK) would hold up its batch: none is sent through this client (the hub's
    subscription has a connection of its own).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._queued: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        BREAKER.check()
        loop = asyncio.get_running_loop()
        if not self._queued:
            loop.call_soon(self._send_queued)
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((args, options, future))
        return await future

    def _send_queued(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._round_trip(batch)
        except BaseException as exc:
            if _guarded(exc):
                BREAKER.failed(exc)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RedisConnectionError("Redis client closed"))
            if not isinstance(exc, Exception):
                raise
            return
        BREAKER.succeeded()
        for (_, _, future), reply in zip(batch, replies):
            if future.done():
                continue  # its caller gave up waiting (a timeout)
            if isinstance(reply, Exception):
                future.set_exception(reply)  # a command's own error (NOSCRIPT, WRONGTYPE)
            else:
                future.set_result(reply)

    async def _round_trip(self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> list[Any]:
        if len(batch) == 1:
            [(args, options, _)] = batch
            try:
                return [await super().execute_command(*args, **options)]
            except ResponseError as exc:
                return [exc]
        pipe = Pipeline(self.connection_pool, self.response_callbacks, False, None)
        for args, options, _ in batch:
            pipe.execute_command(*args, **options)
        return await pipe.execute(raise_on_error=False)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _BreakerPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class SharedRedis:
    """One async client (one pool) per event loop, all behind ``BREAKER``."""

    def __init__(self, url: str, *, socket_timeout: float, connect_timeout: float, max_connections: int = 500):
        self.url = url
        self.max_connections = max_connections
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncBreakerRedis] = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(cls) -> SharedRedis:
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

    def get(self) -> AsyncBreakerRedis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # A burst beyond max_connections waits (up to one socket timeout) for a free
            # connection instead of failing at once.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=self.socket_timeout,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.connect_timeout,
                retry=_async_retry(),
                # No CLIENT SETINFO round trips on every new connection.
                driver_info=None,
            )
            client = self._clients[loop] = AsyncBreakerRedis(connection_pool=pool)
        return client

    async def aclose(self) -> None:
        """Close the running loop's client (the others belong to loops that are gone)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose(close_connection_pool=True)
