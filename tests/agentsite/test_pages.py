"""Site-wide pages: the error pages in the site's style with a way back, and the favicon."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.urls import reverse
from django.views import defaults

pytestmark = [pytest.mark.django_db]


def test_an_unknown_chat_is_the_sites_404_page_with_a_way_back(client, owner):
    client.force_login(owner)
    response = client.get(reverse("chat:chat", args=[uuid.uuid4()]))
    assert response.status_code == 404
    assert "404.html" in [t.name for t in response.templates]
    html = response.content.decode()
    assert "Page not found" in html and f'href="{reverse("chat:home")}"' in html and "Back to your chats" in html


def test_an_unknown_api_path_still_answers_json(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Not found."}


def test_the_403_and_500_pages_are_the_sites_own():
    request = RequestFactory().get("/somewhere/")
    for response, heading in (
        (defaults.permission_denied(request, PermissionDenied()), "Not allowed"),
        (defaults.server_error(request), "Something went wrong"),  # rendered without a request context
    ):
        html = response.content.decode()
        assert heading in html and "Back to your chats" in html and 'id="theme-select"' in html


def test_the_favicon_is_an_icon_at_the_root(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"
    assert "max-age=86400" in response["Cache-Control"]
