"""How a websocket handshake is checked, before the consumer runs: its origin, then its
session and user.

**Origin.** Handshakes are accepted only from the site's own origin.

A browser sends the session cookie with a websocket handshake to any page that asks, and
the same-origin policy does not apply to websockets: the ``Origin`` header is the only
thing that tells our chat page from another web app running on, say, another port of the
same host. So the check is Django's CSRF origin check, applied to the handshake: the
origin must be exactly this site's scheme, host and port (the host one of
``ALLOWED_HOSTS``), or one of ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com`` matches
subdomains there too). A handshake without an ``Origin`` header is refused: every browser
sends one, so only a non-browser client omits it, and those have no cookie to abuse.

**Session and user**, read once from the session cookie: the socket never changes its
session, so unlike Channels' session middleware nothing wraps the socket's ``send`` (which
every streamed event goes through). A database or Redis outage while they are read marks
the scope (``outage``): the consumer then closes with 4503 (retry) instead of the handshake
failing with HTTP 500.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.auth import get_user
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain
from django.utils.module_loading import import_string

from chat.errors import OUTAGES

logger = logging.getLogger(__name__)


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _is_secure(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    # Behind a proxy that terminates TLS, as Django's request.is_secure() decides it.
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, value = proxy
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        forwarded = headers.get(name, b"").decode("latin-1").split(",")[0].strip()
        return forwarded == value
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    headers = _headers(scope)
    origin = headers.get(b"origin", b"").decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1")
    if not origin or not host:
        return False
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if _is_secure(scope, headers) else "http"
    if origin == f"{scheme}://{host}":
        return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    parsed = urlsplit(origin)
    return any(
        parsed.scheme == urlsplit(pattern).scheme and is_same_domain(parsed.netloc, urlsplit(pattern).netloc[1:])
        for pattern in trusted
        if "*" in pattern
    )


class SiteOriginValidator:
    """ASGI middleware: websocket handshakes from any other origin are refused (HTTP 403)."""

    def __init__(self, application: Any):
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


class SessionUser:
    """ASGI middleware: ``scope["session"]`` and ``scope["user"]`` from the session cookie."""

    def __init__(self, application: Any):
        self.application = application
        self.store = import_string(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies = parse_cookie(_headers(scope).get(b"cookie", b"").decode("latin-1"))
        scope = {**scope, "cookies": cookies, "session": self.store(cookies.get(settings.SESSION_COOKIE_NAME))}
        try:
            scope["user"] = await get_user(scope)
        except OUTAGES as exc:
            logger.warning("websocket handshake on %s: service unavailable (%s)", scope.get("path"), exc)
            scope["user"], scope["outage"] = AnonymousUser(), True
        return await self.application(scope, receive, send)
