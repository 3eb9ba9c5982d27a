"""Every cache and event-log key the project uses, built in one place.

Keys carry the session id inside ``{}`` so that all keys of one session hash to the same
Redis Cluster slot and a Lua script may touch them together.
"""

from __future__ import annotations

from django.conf import settings

from chat.ids import ChatRef


def _prefix() -> str:
    return settings.KEY_PREFIX


def session_cache_meta(session_id: str) -> str:
    """Hash: revision, whether data is held, coverage of the cached tail."""
    return f"{_prefix()}:chat:{{{session_id}}}:meta"


def session_cache_messages(session_id: str) -> str:
    """Sorted set: the cached tail, one member per message, scored by cumulative tokens."""
    return f"{_prefix()}:chat:{{{session_id}}}:msgs"


def session_event_log(chat: ChatRef) -> str:
    """Stream of the chat's websocket events, for replay on reconnect."""
    return f"{_prefix()}:events:{{{chat}}}:log"


def session_event_counter(chat: ChatRef) -> str:
    """Hash: the last event id handed out for the chat (``n``) and its epoch."""
    return f"{_prefix()}:events:{{{chat}}}:id"


def session_channel(chat: ChatRef) -> str:
    """Redis pub/sub channel on which a chat's events reach the other processes."""
    return f"{_prefix()}:events:{{{chat}}}:live"


def run_control() -> str:
    """Redis pub/sub channel every process hears: the id of a run to cancel."""
    return f"{_prefix()}:runs:cancel"


def rate_limit(user_id: int, window: int) -> str:
    """Django-cache key counting one user's messages in one rate-limit window."""
    return f"{_prefix()}:rate:{user_id}:{window}"
