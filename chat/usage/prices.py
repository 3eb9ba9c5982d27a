"""The price of a model call, from the table in settings (``USAGE_PRICES``)."""

from __future__ import annotations

import logging
from typing import Mapping

from django.conf import settings

logger = logging.getLogger(__name__)

_warned: set[str] = set()


def price_of(model: str) -> dict[str, float] | None:
    """Dollars per million input and output tokens of ``model``: its entry, or that of the
    longest name it starts with (a dated model name is priced as its family)."""
    table: Mapping[str, dict[str, float]] = settings.USAGE_PRICES
    if model in table:
        return table[model]
    matches = [name for name in table if model.startswith(name)]
    return table[max(matches, key=len)] if matches else None


def cost_micros(model: str, usage: Mapping[str, int]) -> int:
    """What a call with ``usage`` cost, in millionths of a dollar (0 for a model not in the
    table, logged once per process)."""
    price = price_of(model)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning("no price for model %r in USAGE_PRICES: its calls are counted at 0", model)
        return 0
    # Dollars per million tokens is millionths of a dollar per token.
    read = price.get("cache_read", settings.USAGE_CACHE_READ_MULTIPLIER)
    write = price.get("cache_write", settings.USAGE_CACHE_WRITE_MULTIPLIER)
    micros = (
        usage.get("input_tokens", 0) * price["input"]
        + usage.get("cache_read_tokens", 0) * price["input"] * read
        + usage.get("cache_write_tokens", 0) * price["input"] * write
        + usage.get("output_tokens", 0) * price["output"]
    )
    return round(micros)


def tokens_of(usage: Mapping[str, int]) -> int:
    """The tokens a call counts for against a token quota: all it read and wrote."""
    return sum(usage.get(key, 0) for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"))


def dollars(micros: int) -> float:
    return round(micros / 1_000_000, 6)
