"""The settings this project reads for accounts and the API, as a fresh process sees them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The settings module alone, as start-up reads it (no app loading: it is not needed).
READ = (
    "from agentsite import settings as s;"
    "print(s.ACCOUNTS_SIGNUP_ENABLED, s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['user'])"
)
OWN = ("DATABASE_URL", "REDIS_URL", "ACCOUNTS_SIGNUP_ENABLED", "API_THROTTLE_USER")


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in OWN}
    return subprocess.run(
        [sys.executable, "-c", READ], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("env", "signup"),
    [
        ({}, "True"),  # embedded: a new user signs up right after starting
        ({"DATABASE_URL": "postgres://x@127.0.0.1/x"}, "False"),  # production: closed unless asked
        ({"DATABASE_URL": "postgres://x@127.0.0.1/x", "ACCOUNTS_SIGNUP_ENABLED": "true"}, "True"),
        ({"ACCOUNTS_SIGNUP_ENABLED": "false"}, "False"),
    ],
)
def test_signup_is_open_by_default_only_in_the_embedded_mode(env, signup):
    result = start(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == signup


def test_throttle_rates_come_from_the_environment():
    assert start({"API_THROTTLE_USER": "30/hour"}).stdout.split()[1] == "30/hour"


@pytest.mark.parametrize("rate", ["lots", "10/fortnight", "0/min", "-1/min"])
def test_a_malformed_throttle_rate_stops_start_up_naming_the_variable(rate):
    result = start({"API_THROTTLE_USER": rate})
    assert result.returncode != 0
    assert "API_THROTTLE_USER must look like 600/min" in result.stderr


# The serving process as daphne builds it: Django set up, the ASGI application imported.
SERVE = (
    "import gc; before = gc.get_freeze_count(); import agentsite.asgi;"
    "print(gc.get_threshold()[0], before, gc.get_freeze_count())"
)


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in OWN and k != "GC_YOUNG_THRESHOLD"}
    return subprocess.run([sys.executable, "-c", SERVE], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(("env", "threshold"), [({}, 20_000), ({"GC_YOUNG_THRESHOLD": "5000"}, 5000)])
def test_a_serving_process_freezes_what_start_up_built_and_collects_young_objects_less_often(env, threshold):
    result = serve(env)
    assert result.returncode == 0, result.stderr
    young, frozen_before, frozen_after = map(int, result.stdout.split())
    assert young == threshold
    # Django, the apps and the libraries: tens of thousands of objects the collector no
    # longer walks (a full collection walked them all, every few seconds under load).
    assert frozen_before == 0 and frozen_after > 20_000


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_bad_collector_threshold_stops_start_up_naming_the_variable(value):
    result = serve({"GC_YOUNG_THRESHOLD": value})
    assert result.returncode != 0
    assert "GC_YOUNG_THRESHOLD" in result.stderr
