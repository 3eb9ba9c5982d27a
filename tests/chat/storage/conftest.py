from __future__ import annotations

import pytest
from django.conf import settings

from chat.redis_client import SharedRedis
from chat.storage import HybridStorage
from chat.storage.cache import LocalMessageCache, MessageCache
from chat.storage.redis_cache import RedisMessageCache


def make_cache(kind: str, **overrides) -> MessageCache:
    options = {"ttl": 60, "max_messages": 50, **overrides}
    if kind == "local":
        return LocalMessageCache(**options)
    redis = SharedRedis(overrides.pop("url", settings.REDIS_URL), socket_timeout=0.25, connect_timeout=0.25)
    return RedisMessageCache(redis, **{k: v for k, v in options.items() if k != "url"})


class CountingCache(MessageCache):
    """Wraps a cache and counts operations: each is one round trip on Redis."""

    def __init__(self, inner: MessageCache):
        super().__init__(ttl=inner.ttl, max_messages=inner.max_messages)
        self.inner = inner
        self.calls: list[str] = []

    def __getattribute__(self, name):
        if name in ("read_recent", "read_budget", "fill", "append", "replace", "invalidate", "drop", "ping"):
            inner = object.__getattribute__(self, "inner")
            object.__getattribute__(self, "calls").append(name)
            return getattr(inner, name)
        return object.__getattribute__(self, name)

    async def read_recent(self, *a): ...  # pragma: no cover - replaced by __getattribute__
    async def read_budget(self, *a): ...  # pragma: no cover
    async def fill(self, *a): ...  # pragma: no cover
    async def append(self, *a): ...  # pragma: no cover
    async def replace(self, *a): ...  # pragma: no cover
    async def invalidate(self, *a): ...  # pragma: no cover
    async def drop(self, *a): ...  # pragma: no cover
    async def ping(self): ...  # pragma: no cover


CACHE_KINDS = ["local", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=CACHE_KINDS)
def cache_kind(request, key_prefix):
    return request.param


@pytest.fixture
def message_cache(cache_kind):
    return make_cache(cache_kind)


@pytest.fixture
def storage(message_cache):
    return HybridStorage(cache=message_cache)
