"""Per-user message rate limit, counted in the Django cache (Redis when REDIS_URL is set,
so the limit holds across processes). Fixed one-minute windows."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache

from chat.errors import UserError
from chat.storage import keys

logger = logging.getLogger(__name__)


async def check_message_rate(user_id: int) -> None:
    """Count one message; raises UserError("rate_limited") past the limit."""
    window = int(time.time() // 60)
    key = keys.rate_limit(user_id, window)
    try:
        await cache.aadd(key, 0, timeout=120)
        count = await cache.aincr(key)
    except ValueError:
        # The cache lost the key (Redis away, IGNORE_EXCEPTIONS): let the message through
        # rather than refuse everyone while Redis is down.
        return
    if count > settings.CHAT_RATE_LIMIT_PER_MINUTE:
        raise UserError(
            "rate_limited",
            f"You can send {settings.CHAT_RATE_LIMIT_PER_MINUTE} messages a minute; wait a moment and try again.",
        )
