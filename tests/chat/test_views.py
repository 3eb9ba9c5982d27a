"""The template views of the chat app."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import ChatSession
from tests.factories import seed_history

pytestmark = pytest.mark.django_db


def test_home_needs_a_login(client):
    response = client.get(reverse("chat:home"))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_home_lists_only_the_users_own_chats(client, owner, stranger):
    mine = seed_history(owner, 2)
    theirs = seed_history(stranger, 2)
    ChatSession.objects.filter(pk=mine.pk).update(title="My <b>plans</b>")
    ChatSession.objects.filter(pk=theirs.pk).update(title="Their secrets")
    client.force_login(owner)

    html = client.get(reverse("chat:home")).content.decode()

    assert "My &lt;b&gt;plans&lt;/b&gt;" in html  # titles are escaped
    assert "Their secrets" not in html
    assert "2 messages" in html
