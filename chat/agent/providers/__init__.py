"""Model providers: Claude when ``ANTHROPIC_API_KEY`` is set, else the offline demo model."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from chat.agent.providers.base import ModelEvent, ModelReply, Provider, ProviderError, TextDelta

__all__ = ["ModelEvent", "ModelReply", "Provider", "ProviderError", "TextDelta", "get_provider"]


def get_provider() -> Provider:
    """A provider for one run, chosen by settings. Close it with ``aclose()`` when done.

    ``AGENT_PROVIDER`` (a dotted path to a Provider class or factory) overrides the choice:
    a custom model, or a load-test model for benchmarks.
    """
    if settings.AGENT_PROVIDER:
        return import_string(settings.AGENT_PROVIDER)()
    if settings.ANTHROPIC_API_KEY:
        from chat.agent.providers.anthropic import AnthropicProvider

        return AnthropicProvider.from_settings()
    from chat.agent.providers.offline import OfflineProvider

    return OfflineProvider()
