"""Log records that say whose work they are about.

The ids of the request, chat session, run and user being served live in context
variables: set where the work enters (``IdsMiddleware`` for HTTP, the websocket consumer,
a run's task) and inherited by every task created from there, so a log line written deep
in the storage layer still carries them. ``IdsFilter`` copies them onto each record; with
``LOG_FORMAT=json`` (``JsonFormatter``) a line is one JSON object; the default text format
stays as it was.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
SESSION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)
RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
USER_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)

# The HTTP request being served, for its user once authentication has found them.
_REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("request", default=None)

_VARS = {"request_id": REQUEST_ID, "session_id": SESSION_ID, "run_id": RUN_ID, "user_id": USER_ID}
# What every LogRecord has; anything else a caller passed in ``extra`` goes into the JSON.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", *_VARS}


def bind(**ids: Any) -> None:
    """Set ids for the rest of this context (a task, a request); None clears one."""
    for name, value in ids.items():
        _VARS[name].set(None if value is None else str(value))


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    tokens = [(_VARS[name], _VARS[name].set(None if value is None else str(value))) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _request_user_id() -> str | None:
    """The id of the request's user if authentication has found it already: looking it up
    here would be a query inside a log call (and is not allowed from async code)."""
    request = _REQUEST.get()
    if request is None:
        return None
    user = request.__dict__.get("user")
    wrapped = getattr(user, "_wrapped", user)  # Django's lazy user, before it is read: a sentinel
    if wrapped is None or getattr(wrapped, "is_authenticated", False) is not True:
        return None
    return str(wrapped.pk)


def current_ids() -> dict[str, str | None]:
    ids = {name: var.get() for name, var in _VARS.items()}
    if ids["user_id"] is None:
        ids["user_id"] = _request_user_id()
    return ids


class IdsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_ids().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = current_ids()
        for name in _VARS:
            value = getattr(record, name, None) or ids[name]
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class IdsMiddleware:
    """Binds the request id (the client's ``X-Request-ID`` if sane, else a new one) and
    the user for the request's logs, and answers with the id in ``X-Request-ID``."""

    def __init__(self, get_response: Callable[[Any], Any]):
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if 0 < len(given) <= 100 and given.isprintable() else uuid.uuid4().hex
        # Set, not reset afterwards: Django logs a failed request ("django.request") after
        # the middleware returned. The next request on this thread sets them all again.
        _REQUEST.set(request)
        bind(request_id=request_id, user_id=None, session_id=None, run_id=None)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
