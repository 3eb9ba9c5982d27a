"""Tokens (/api/v1/auth/token/), throttling, and the one error shape across the API."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.chat.api.checks import assert_error

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
CHATS = "/api/v1/chats/"


def test_a_username_and_password_get_a_token_that_works(anonymous, owner):
    response = anonymous.post(TOKEN, {"username": "owner", "password": "owner-pass-123"}, format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    assert token == Token.objects.get(user=owner).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(CHATS).status_code == 200


def test_asking_again_returns_the_same_token(anonymous, owner):
    credentials = {"username": "owner", "password": "owner-pass-123"}
    first = anonymous.post(TOKEN, credentials, format="json").json()["token"]
    assert anonymous.post(TOKEN, credentials, format="json").json()["token"] == first


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "owner", "password": "wrong"},
        {"username": "nobody", "password": "owner-pass-123"},
        {"username": "owner"},
        {},
    ],
)
def test_bad_credentials_get_no_token(anonymous, owner, payload):
    assert_error(anonymous.post(TOKEN, payload, format="json"), 400, "invalid")
    assert not Token.objects.exists()


def test_revoking_the_token_ends_it(as_owner, owner):
    assert as_owner.delete(TOKEN).status_code == 204
    assert not Token.objects.filter(user=owner).exists()
    assert_error(as_owner.get(CHATS), 401, "authentication_failed")


def test_revoking_anonymous_is_401(anonymous):
    response = anonymous.delete(TOKEN)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_made_up_token_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(anonymous.get(CHATS), 401, "authentication_failed")


def test_too_many_requests_are_429_with_retry_after(settings, owner, as_owner):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "2/min"},
    }
    cache.delete(f"throttle_user_{owner.pk}")  # requests by an earlier test's user of this id

    statuses = [as_owner.get(CHATS).status_code for _ in range(2)]
    refused = as_owner.get(CHATS)

    assert statuses == [200, 200]
    assert_error(refused, 429, "throttled")
    assert int(refused["Retry-After"]) > 0


def test_password_guesses_are_throttled_per_address(settings, anonymous, owner):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "3/min"},
    }
    cache.delete("throttle_token_127.0.0.1")

    for _ in range(3):
        anonymous.post(TOKEN, {"username": "owner", "password": "guess"}, format="json")
    refused = anonymous.post(TOKEN, {"username": "owner", "password": "owner-pass-123"}, format="json")

    assert_error(refused, 429, "throttled")


def test_an_unknown_api_path_is_a_json_404(as_owner):
    assert_error(as_owner.get("/api/v1/nothing-here/"), 404, "not_found")


def test_a_wrong_method_is_405_in_the_same_shape(as_owner):
    assert_error(as_owner.put(CHATS, {}, format="json"), 405, "method_not_allowed")


def test_a_body_that_is_not_json_is_415(as_owner):
    assert_error(as_owner.post(CHATS, "title=x", content_type="application/x-www-form-urlencoded"), 415)


def test_a_forged_forwarded_for_header_does_not_dodge_the_limit(settings, anonymous, owner):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "1/min"},
    }
    cache.delete("throttle_token_127.0.0.1")

    anonymous.post(TOKEN, {"username": "owner", "password": "guess"}, format="json", HTTP_X_FORWARDED_FOR="10.0.0.1")
    refused = anonymous.post(TOKEN, {"username": "owner", "password": "x"}, format="json", HTTP_X_FORWARDED_FOR="10.0.0.2")

    assert_error(refused, 429, "throttled")
