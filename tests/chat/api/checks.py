"""Assertions and clients shared by the API tests."""

from __future__ import annotations

from typing import Any

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def token_client(user: Any) -> APIClient:
    """A client that authenticates the way scripts do: ``Authorization: Token …``."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, str]:
    """The one error shape: the status, and a JSON body of exactly code and message."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body
