"""API clients for the personas, authenticated the way scripts are: with a token."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.chat.api.checks import token_client
from tests.factories import seed_messages, tool_turn


@pytest.fixture(autouse=True)
def generous_throttles(settings):
    """Rates no test reaches by accident; the throttling test sets its own."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "anon": "100000/min", "token": "100000/min"},
    }


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def as_owner(owner) -> APIClient:
    return token_client(owner)


@pytest.fixture
def as_stranger(stranger) -> APIClient:
    return token_client(stranger)


@pytest.fixture
def chat(owner):
    """The owner's chat: a question, a tool call, its result (with display data), a reply."""
    return seed_messages(owner, tool_turn("toolu_1"), title="Sums")

