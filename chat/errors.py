"""The one error type for "the user did something wrong".

HTTP views and the websocket consumer render it the same way: ``{"code", "message"}``.
Anything else that escapes is a bug or an outage, not the user's fault.
"""

from __future__ import annotations

import datetime as dt

from django.db import DatabaseError
from redis.exceptions import RedisError

# What "the database or Redis is away" looks like: not the user's fault, and trying again
# later helps. (TimeoutError and ConnectionError are OSErrors.)
OUTAGES: tuple[type[BaseException], ...] = (DatabaseError, RedisError, OSError)


class UserError(Exception):
    """A request that cannot be done as asked. Nothing was changed."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class NotFound(UserError):
    """Missing, or someone else's: the two are indistinguishable on purpose."""

    status = 404

    def __init__(self, message: str = "Not found."):
        super().__init__("not_found", message)


class QuotaExceeded(UserError):
    """The user reached a usage limit (``chat.usage.quotas``); ``resets_at`` says when
    they may go on."""

    status = 429

    def __init__(self, resets_at: dt.datetime, message: str | None = None, *, code: str = "quota_exceeded"):
        stamp = resets_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        super().__init__(code, message or f"You have reached your usage limit. It resets at {stamp}.")
        self.resets_at = resets_at

    def as_dict(self) -> dict[str, str]:
        return {**super().as_dict(), "resets_at": self.resets_at.isoformat()}


class QuotaBusy(QuotaExceeded):
    """Close to a limit, the user's turns go one at a time (``chat.usage.quotas``)."""

    status = 409

    def __init__(self, resets_at: dt.datetime):
        super().__init__(
            resets_at,
            "You are close to your usage limit, so replies go one at a time: wait for your other "
            "reply to finish.",
            code="quota_busy",
        )


class ContextTooLong(UserError):
    """The newest turn alone is larger than the model's context window: nothing could be
    sent that holds it, so no model call is made (``chat.message_manager``)."""

    status = 413

    def __init__(self, *, turn_tokens: int, window: int):
        over = turn_tokens - window
        super().__init__(
            "context_too_long",
            f"The newest message is about {turn_tokens:,} tokens: {over:,} tokens more than the model's "
            f"context window of {window:,}. Shorten it (or split it into several messages) and send it again.",
        )
        self.turn_tokens = turn_tokens
        self.window = window
        self.over = over
