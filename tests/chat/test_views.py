"""The template views of the chat app: the chat page's shell (the browser tests in
tests/ui/ drive the page itself)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid

import pytest
from django.conf import settings
from django.urls import reverse

from chat import ui
from chat.models import ChatSession
from tests.factories import seed_history

pytestmark = pytest.mark.django_db


def test_home_needs_a_login(client):
    response = client.get(reverse("chat:home"))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_a_chat_page_needs_a_login(client, owner):
    chat = seed_history(owner, 2)
    response = client.get(reverse("chat:chat", args=[chat.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_home_lists_only_the_users_own_chats(client, owner, stranger):
    mine = seed_history(owner, 2)
    theirs = seed_history(stranger, 2)
    ChatSession.objects.filter(pk=mine.pk).update(title="My <b>plans</b>")
    ChatSession.objects.filter(pk=theirs.pk).update(title="Their secrets")
    client.force_login(owner)

    html = client.get(reverse("chat:home")).content.decode()

    assert "My &lt;b&gt;plans&lt;/b&gt;" in html  # titles are escaped
    assert "Their secrets" not in html
    assert f'href="/c/{mine.pk}/"' in html


def test_someone_elses_chat_page_is_a_404_like_a_missing_one(client, owner, stranger):
    theirs = seed_history(stranger, 2)
    client.force_login(owner)
    assert client.get(reverse("chat:chat", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("chat:chat", args=[uuid.uuid4()])).status_code == 404


def test_a_chat_page_tells_the_script_which_chat_and_where_things_are(client, owner):
    chat = seed_history(owner, 2)
    client.force_login(owner)

    response = client.get(reverse("chat:chat", args=[chat.pk]))

    html = response.content.decode()
    config = json.loads(re.search(r'<script id="chat-config" type="application/json">(.*?)</script>', html).group(1))
    assert config["chatId"] == str(chat.pk)
    assert config["apiRoot"] == "/api/v1/"
    assert config["chatUrl"] == "/c/{id}/"
    assert config["wsRoot"] == "/ws/chat/"
    assert config["csrfToken"]
    assert f'<a class="chat-link" href="/c/{chat.pk}/" aria-current="page">' in html


def test_only_the_pages_own_scripts_may_run(client, owner):
    client.force_login(owner)
    response = client.get(reverse("chat:home"))
    html = response.content.decode()

    import_map = re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    policy = response["Content-Security-Policy"]
    assert f"script-src 'self' 'sha256-{digest}'" in policy
    assert "object-src 'none'" in policy and "base-uri 'none'" in policy
    assert "connect-src 'self' ws://testserver" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    # Every inline script other than the import map is data, not code.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert sorted(inline) == sorted([' type="importmap"', ' id="chat-config" type="application/json"'])


def test_every_module_of_the_page_is_in_the_import_map():
    modules = sorted(
        str(path.relative_to(settings.BASE_DIR / "static")) for path in (settings.BASE_DIR / "static" / "chat").glob("*.js")
    )
    assert modules == sorted(m for m in ui.MODULES if m.startswith("chat/"))
    imports = json.loads(ui.page_assets().import_map)["imports"]
    assert set(imports) == {f"/static/{m}" for m in ui.MODULES}
    for module in ui.MODULES:
        assert (settings.BASE_DIR / "static" / module).is_file(), module
