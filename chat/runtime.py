"""The process-wide objects: built once, in one place, and closed once.

``Runtime`` builds, from settings and without any I/O, everything a serving process shares:
the Redis client (one pool), the message cache and storage, the event log, the hub of
sockets, the publisher, the model provider, the tool registry and the run manager. It is
built when Django starts (``chat.apps``); the ASGI application starts its background work
(the hub's subscription, the run manager's sweep) on the lifespan startup event or, under
daphne, which sends none, on the first connection; it is closed on the lifespan shutdown
event or when daphne's reactor stops. Tests build a fresh one for each test (``install``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from django.conf import settings

from chat.agent.providers import Provider, get_provider
from chat.redis_client import SharedRedis
from chat.runs.eventlog import EventLog, MemoryEventLog, RedisEventLog
from chat.runs.hub import Hub
from chat.runs.liveness import Liveness
from chat.runs.manager import RunManager
from chat.runs.publisher import Publisher
from chat.storage.cache import LocalMessageCache, MessageCache
from chat.storage.hybrid import HybridStorage
from tools.registry import ToolRegistry, builtin_tools

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(self, *, provider: Provider | None = None, tools: ToolRegistry | None = None):
        # This process, in what it publishes (its subscription skips its own batches).
        self.origin = secrets.token_hex(8)
        self.redis = SharedRedis.from_settings() if settings.REDIS_URL else None
        self.cache = self._cache()
        self.storage = HybridStorage(self.cache)
        self.log = self._log()
        self.hub = Hub(self.redis, origin=self.origin)
        self.publisher = Publisher(self.log, self.hub)
        self.provider = provider or get_provider()
        self.tools = tools or builtin_tools()
        self.liveness = Liveness()
        self.runs = RunManager(
            storage=self.storage,
            publisher=self.publisher,
            hub=self.hub,
            liveness=self.liveness,
            provider=self.provider,
            tools=self.tools,
        )
        self._started = False

    def _cache(self) -> MessageCache:
        options = {"ttl": settings.CHAT_CACHE_TTL, "max_messages": settings.CHAT_CACHE_MAX_MESSAGES}
        if self.redis is None:
            return LocalMessageCache(**options)
        from chat.storage.redis_cache import RedisMessageCache

        return RedisMessageCache(self.redis, **options)

    def _log(self) -> EventLog:
        options = {"max_events": settings.EVENT_LOG_MAX_EVENTS, "ttl": settings.EVENT_LOG_TTL}
        if self.redis is None:
            return MemoryEventLog(**options)
        return RedisEventLog(self.redis, origin=self.origin, **options)

    async def start(self) -> None:
        """Start the background work, once, in the running event loop."""
        if self._started:
            return
        self._started = True
        await self.hub.start()
        self.runs.start()

    async def aclose(self) -> None:
        await self.runs.aclose()
        await self.hub.aclose()
        await self.provider.aclose()
        if self.redis is not None:
            await self.redis.aclose()


_current: Runtime | None = None


def get() -> Runtime:
    if _current is None:
        raise RuntimeError("the runtime is not built: chat.apps builds it when Django starts")
    return _current


def install(runtime: Runtime | None) -> Runtime | None:
    """Make ``runtime`` the process's (tests: a fresh one per test); returns the previous."""
    global _current
    previous, _current = _current, runtime
    return previous


class RuntimeLifespan:
    """ASGI middleware: starts the runtime with the server and closes it with it."""

    def __init__(self, application: Any):
        self.application = application
        self._shutdown_hooked = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        await get().start()
        self._hook_daphne_shutdown()
        return await self.application(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await get().start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await get().aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _hook_daphne_shutdown(self) -> None:
        """daphne sends no lifespan events; close the runtime before its reactor stops."""
        if self._shutdown_hooked:
            return
        self._shutdown_hooked = True
        try:
            from twisted.internet import reactor
            from twisted.internet.defer import Deferred
        except ImportError:  # pragma: no cover - not under daphne
            return
        if not getattr(reactor, "running", False):
            return

        def close() -> Any:
            return Deferred.fromFuture(asyncio.ensure_future(get().aclose()))

        reactor.addSystemEventTrigger("before", "shutdown", close)
