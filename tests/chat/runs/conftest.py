from __future__ import annotations

import pytest
from django.conf import settings

from chat.redis_client import SharedRedis
from chat.runs.eventlog import MemoryEventLog, RedisEventLog

LOG_KINDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


def make_log(kind: str, *, max_events: int = 1000, ttl: int = 60):
    if kind == "memory":
        return MemoryEventLog(max_events=max_events, ttl=ttl)
    return RedisEventLog(
        SharedRedis(settings.REDIS_URL, socket_timeout=1, connect_timeout=1), max_events=max_events, ttl=ttl
    )


@pytest.fixture(params=LOG_KINDS)
def log_kind(request, key_prefix):
    return request.param
