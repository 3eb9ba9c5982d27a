"""/healthz (the process is up) and /readyz (the database and the cache answer)."""

from __future__ import annotations

import pytest
from django.db.utils import OperationalError

from agentsite import health

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_a_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_ok_when_the_database_and_the_cache_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "cache": True}}


def test_readyz_is_503_naming_a_database_that_does_not_answer(client, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", broken)
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": False, "cache": True}}


def test_readyz_is_503_naming_a_cache_that_does_not_answer(client, monkeypatch, runtime):
    async def down() -> bool:
        return False

    monkeypatch.setattr(runtime.cache, "ping", down)
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "cache": False}
