"""Admin pages stay fast on a 100,000-message history: query counts do not grow with rows,
and a session's page shows one page of messages, not all of them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import ChatSession, Message
from tests.factories import make_artifact, pause_on_question, seed_history

HUGE = 100_000

pytestmark = [pytest.mark.django_db]


@pytest.fixture(scope="module")
def huge_session(django_db_setup, django_db_blocker):
    """One session with 100,000 messages, written once for the module (about 15 s)."""
    with django_db_blocker.unblock():
        user = get_user_model().objects.create_user("prolific", password="x")
        session = seed_history(user, HUGE)
        make_artifact(session, title="Big chat's notes")
    yield session
    with django_db_blocker.unblock():
        user.delete()


def queries(client, url: str, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(captured.captured_queries)


def add_rows(django_user_model, name: str, count: int) -> None:
    """More sessions, owners, paused loops and artifacts: everything a list page shows."""
    for index in range(count):
        user = django_user_model.objects.create_user(f"{name}{index}", password="x")
        session = pause_on_question(user)
        make_artifact(session, title=f"Artifact {index}")


@pytest.mark.parametrize("model", ["chatsession", "loopstate", "artifact"])
def test_changelist_query_count_does_not_grow_with_rows(admin_client, django_user_model, huge_session, model):
    url = reverse(f"admin:chat_{model}_changelist")
    add_rows(django_user_model, "few", 2)
    small = queries(admin_client, url)

    add_rows(django_user_model, "many", 25)
    large = queries(admin_client, url)

    assert large == small
    assert ChatSession.objects.count() == 1 + 2 + 25


def test_list_pages_never_read_the_message_table(admin_client, huge_session):
    table = Message._meta.db_table
    for model in ("chatsession", "loopstate", "artifact"):
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(reverse(f"admin:chat_{model}_changelist")).status_code == 200
        assert not [q["sql"] for q in captured.captured_queries if table in q["sql"]], model


def test_a_huge_sessions_page_shows_one_page_of_messages(admin_client, owner, huge_session):
    small = seed_history(owner, 60)
    make_artifact(small)
    small_url = reverse("admin:chat_chatsession_change", args=[small.pk])
    admin_client.get(small_url)  # warms the content-type cache the first admin page fills
    small_queries = queries(admin_client, small_url)

    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(
            reverse("admin:chat_chatsession_change", args=[huge_session.pk]), {"messages_after": HUGE - 30}
        )

    shown = [m.sequence for m in response.context["inline_admin_formsets"][1].formset.get_queryset()]
    assert shown == list(range(HUGE - 29, HUGE + 1))
    assert f"Messages {HUGE - 29:,}".replace(",", "") in response.content.decode().replace(",", "")
    assert response.content.decode().count('class="field-sequence"') == 30
    assert len(captured.captured_queries) == small_queries
