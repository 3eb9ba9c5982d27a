"""The price table: a dated model name is priced as its family, per-model cache
multipliers beat the defaults, an unknown model costs 0, and a bad USAGE_PRICES stops
start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chat.agent.providers.base import usage
from chat.usage import prices

ROOT = Path(__file__).resolve().parents[3]


def test_a_dated_model_is_priced_as_the_longest_name_it_starts_with():
    assert prices.price_of("claude-sonnet-4-5-20250929") == {"input": 3.0, "output": 15.0}
    assert prices.price_of("claude-opus-4-5-20251101")["input"] == 5.0  # not Opus 4's 15
    assert prices.price_of("gpt-whatever") is None


def test_cache_tokens_use_the_models_own_multipliers_or_the_defaults(settings):
    settings.USAGE_CACHE_READ_MULTIPLIER, settings.USAGE_CACHE_WRITE_MULTIPLIER = 0.1, 1.25
    used = usage(input_tokens=1000, output_tokens=100, cache_read_tokens=10_000, cache_write_tokens=2000)
    assert prices.cost_micros("claude-sonnet-4-6", used) == 1000 * 3 + 100 * 15 + 10_000 * 0.3 + 2000 * 3.75
    assert prices.cost_micros("claude-fable-5-1", used) == round(1000 * 10 + 100 * 50 + 10_000 * 0.25 + 2000 * 12.5)


def test_an_unknown_model_costs_nothing_and_is_logged_once(caplog):
    for _ in range(2):
        assert prices.cost_micros("mystery-model-1", usage(100, 100)) == 0
    assert sum("mystery-model-1" in r.message for r in caplog.records) == 1


def read_prices(value: str) -> subprocess.CompletedProcess[str]:
    read = "from agentsite import settings as s; print(s.USAGE_PRICES['my-model'])"
    env = {**{k: v for k, v in os.environ.items() if k != "USAGE_PRICES"}, "USAGE_PRICES": value}
    return subprocess.run([sys.executable, "-c", read], env=env, cwd=ROOT, capture_output=True, text=True)


def test_usage_prices_adds_models_from_json():
    result = read_prices('{"my-model": {"input": 2, "output": 8, "cache_read": 0.05}}')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'input': 2.0, 'output': 8.0, 'cache_read': 0.05}"


@pytest.mark.parametrize("value", ['{"my-model": {"input": 2}}', '{"my-model": {"input": -1, "output": 2}}', '["x"]', "{not json"])
def test_a_bad_price_table_stops_start_up(value):
    result = read_prices(value)
    assert result.returncode != 0
    assert "ImproperlyConfigured: USAGE_PRICES" in result.stderr.strip().splitlines()[-1]
