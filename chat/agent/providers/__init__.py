"""Model providers: Claude when ``ANTHROPIC_API_KEY`` is set, else the offline demo model."""

from __future__ import annotations

from django.conf import settings

from chat.agent.providers.base import ModelEvent, ModelReply, Provider, ProviderError, TextDelta

__all__ = ["ModelEvent", "ModelReply", "Provider", "ProviderError", "TextDelta", "get_provider"]


def get_provider() -> Provider:
    """A provider for one run, chosen by settings. Close it with ``aclose()`` when done."""
    if settings.ANTHROPIC_API_KEY:
        from chat.agent.providers.anthropic import AnthropicProvider

        return AnthropicProvider.from_settings()
    from chat.agent.providers.offline import OfflineProvider

    return OfflineProvider()
