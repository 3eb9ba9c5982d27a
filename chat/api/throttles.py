"""Per-user and per-address request rates, read from settings on every check.

DRF's own throttles copy the rates when they are imported; reading them per check lets a
changed setting (and a test's override) take effect.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle


class _LiveRates:
    @property
    def THROTTLE_RATES(self) -> dict[str, str]:  # noqa: N802 - the name DRF looks up
        return api_settings.DEFAULT_THROTTLE_RATES


class UserThrottle(_LiveRates, UserRateThrottle):
    """Signed-in users, per user; anonymous requests fall back to their address."""


class AnonThrottle(_LiveRates, AnonRateThrottle):
    """Anonymous requests, per client address."""


class TokenThrottle(_LiveRates, SimpleRateThrottle):
    """Password attempts at the token endpoint, per client address, signed in or not."""

    scope = "token"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
