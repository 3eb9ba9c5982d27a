"""Shared fixtures: personas, service markers, cache backends.

Tests marked ``postgres`` or ``redis`` need the real server. Without DATABASE_URL/REDIS_URL
they are skipped with the reason; with AGENTSITE_REQUIRE_SERVICES=1 (CI) a missing or
unreachable server fails them instead.
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings
from django.db import connection

REQUIRE_SERVICES = os.environ.get("AGENTSITE_REQUIRE_SERVICES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # Templates resolve {% static %} without running collectstatic first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _redis_problem() -> str | None:
    if not settings.REDIS_URL:
        return "needs Redis: set REDIS_URL to a real server"
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"Redis at REDIS_URL is not reachable: {exc}"
    return None


def _postgres_problem() -> str | None:
    if connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL to a real server"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, check in (("postgres", _postgres_problem), ("redis", _redis_problem)):
        if item.get_closest_marker(marker):
            problem = check()
            if problem:
                if REQUIRE_SERVICES or (marker == "redis" and settings.REDIS_URL):
                    pytest.fail(problem)
                pytest.skip(problem)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Each persona has a password; the real hasher spends half a second on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user(username="owner", password="owner-pass-123")


@pytest.fixture
def stranger(django_user_model):
    return django_user_model.objects.create_user(username="stranger", password="stranger-pass-123")


@pytest.fixture
def key_prefix(settings):
    """A key prefix of this test's own, so Redis-backed tests never see each other's keys."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings.KEY_PREFIX = prefix
    yield prefix
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            names = list(client.scan_iter(f"{prefix}:*", count=1000))
            if names:
                client.delete(*names)
        except redis.RedisError:
            pass
        finally:
            client.close()


@pytest.fixture(scope="session", autouse=True)
def _close_database_thread_connections(django_db_setup, django_db_blocker):
    """Async tests reach the database from asgiref's one sync thread; close its connection
    before the test database is dropped (PostgreSQL refuses to drop a database in use)."""
    yield
    import asyncio

    from channels.db import database_sync_to_async
    from django.db import connections

    from chat.db import close_pool_connections

    with django_db_blocker.unblock():
        asyncio.run(database_sync_to_async(connections.close_all)())
        close_pool_connections()


@pytest.fixture(autouse=True)
def _no_real_model_calls(settings, monkeypatch):
    """No test reaches the real Anthropic API: ``get_provider()`` gives the offline model,
    and a Claude provider must be pointed at a local fake (``tests.fakes.anthropic_server``)."""
    from chat.agent.providers.anthropic import AnthropicProvider

    settings.ANTHROPIC_API_KEY = ""
    real_init = AnthropicProvider.__init__

    def local_only(self, *, base_url=None, **options):
        if not (base_url or "").startswith(("http://127.0.0.1:", "http://localhost:")):
            raise RuntimeError("tests must not call the real Anthropic API; use tests.fakes.anthropic_server")
        real_init(self, base_url=base_url, **options)

    monkeypatch.setattr(AnthropicProvider, "__init__", local_only)


@pytest.fixture(autouse=True)
def _attachment_storage(settings, tmp_path):
    """Uploaded files go to the test's own directory, never var/."""
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "attachments")},
        },
    }
    return tmp_path / "attachments"


@pytest.fixture(autouse=True)
def _no_artificial_delays(settings):
    """The offline model's pause between words and the pause between artifact chunks exist
    only to make progress visible to people; tests run without them."""
    settings.OFFLINE_MODEL_WORD_DELAY = 0
    settings.ARTIFACT_CHUNK_DELAY = 0


@pytest.fixture(autouse=True)
def runtime(_no_real_model_calls, _no_artificial_delays, key_prefix):
    """A runtime of this test's own: its Redis clients, hub and run manager belong to the
    test's event loop, and its settings (key prefix, delays) are the test's."""
    from chat import runtime as chat_runtime
    from chat.redis_client import BREAKER

    BREAKER.reset()
    fresh = chat_runtime.Runtime()
    previous = chat_runtime.install(fresh)
    yield fresh
    # Their threads hold database connections of their own (a test may install another).
    fresh.liveness.stop()
    chat_runtime.get().liveness.stop()
    chat_runtime.install(previous)
    BREAKER.reset()
