"""Per-user message rate limit, in fixed one-minute windows.

Counted in Redis when REDIS_URL is set (so the limit holds across processes), else in
process memory. Async all the way: Django's cache API would run each count through the
thread that also serves the database. If Redis cannot be reached the message is let
through: refusing everyone while Redis is down would be worse than a missed limit.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

from chat import runtime
from chat.errors import UserError
from chat.redis_client import REDIS_ERRORS
from chat.storage import keys

_local: dict[str, int] = {}
_local_lock = threading.Lock()


async def _count(key: str) -> int:
    redis = runtime.get().redis
    if redis is not None:
        try:
            client = redis.get()
            count = int(await client.incr(key))
            if count == 1:
                await client.expire(key, 120)  # once per window: one command per message
            return count
        except REDIS_ERRORS:  # see the module docstring
            return 0
    with _local_lock:
        window = key.rsplit(":", 1)[1]
        for stale in [k for k in _local if not k.endswith(f":{window}")]:
            del _local[stale]  # earlier windows
        _local[key] = _local.get(key, 0) + 1
        return _local[key]


async def check_message_rate(user_id: int) -> None:
    """Count one message; raises UserError("rate_limited") past the limit."""
    count = await _count(keys.rate_limit(user_id, int(time.time() // 60)))
    if count > settings.CHAT_RATE_LIMIT_PER_MINUTE:
        raise UserError(
            "rate_limited",
            f"You can send {settings.CHAT_RATE_LIMIT_PER_MINUTE} messages a minute; wait a moment and try again.",
            status=429,
        )
