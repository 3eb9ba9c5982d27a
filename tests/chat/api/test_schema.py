"""/api/v1/schema/ and the docs pages at /api/v1/docs/ and /api/v1/docs/redoc/."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = [pytest.mark.django_db]

OPERATIONS = {
    ("/api/v1/chats/", "get"),
    ("/api/v1/chats/", "post"),
    ("/api/v1/chats/{chat_id}/", "get"),
    ("/api/v1/chats/{chat_id}/", "patch"),
    ("/api/v1/chats/{chat_id}/", "delete"),
    ("/api/v1/chats/{chat_id}/messages/", "get"),
    ("/api/v1/chats/{chat_id}/messages/", "post"),
    ("/api/v1/chats/{chat_id}/messages/{message_id}/edit/", "post"),
    ("/api/v1/chats/{chat_id}/messages/{message_id}/regenerate/", "post"),
    ("/api/v1/chats/{chat_id}/messages/{message_id}/versions/", "get"),
    ("/api/v1/chats/{chat_id}/messages/{message_id}/switch/", "post"),
    ("/api/v1/chats/{chat_id}/messages/{message_id}/fork/", "post"),
    ("/api/v1/chats/{chat_id}/artifacts/", "get"),
    ("/api/v1/chats/{chat_id}/export/", "get"),
    ("/api/v1/chats/{chat_id}/context/", "get"),
    ("/api/v1/chats/{chat_id}/compact/", "post"),
    ("/api/v1/artifacts/{artifact_id}/", "get"),
    ("/api/v1/artifacts/{artifact_id}/download/", "get"),
    ("/api/v1/chats/{chat_id}/attachments/", "get"),
    ("/api/v1/chats/{chat_id}/attachments/", "post"),
    ("/api/v1/attachments/{attachment_id}/", "get"),
    ("/api/v1/attachments/{attachment_id}/", "delete"),
    ("/api/v1/attachments/{attachment_id}/download/", "get"),
    ("/api/v1/search/", "get"),
    ("/api/v1/auth/token/", "post"),
    ("/api/v1/auth/token/", "delete"),
    ("/api/v1/usage/", "get"),
}


def test_the_schema_is_openapi_3_and_describes_every_operation(anonymous):
    response = anonymous.get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    described = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert described == OPERATIONS
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_every_error_response_is_documented_in_the_one_shape(anonymous):
    schema = anonymous.get("/api/v1/schema/", {"format": "json"}).json()
    for item in schema["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize("page", ["/api/v1/docs/", "/api/v1/docs/redoc/"])
def test_docs_pages_load_their_assets_from_this_site(anonymous, page):
    response = anonymous.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a static file"
    assert "/api/v1/schema/" in html


def test_swagger_ui_does_not_call_its_public_validator(anonymous):
    html = anonymous.get("/api/v1/docs/").content.decode()
    assert '"validatorUrl": null' in html
