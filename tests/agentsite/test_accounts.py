"""Sign-up, login and logout at /accounts/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db

NEW_USER = {"username": "newcomer", "password1": "a-long-enough-pass-42", "password2": "a-long-enough-pass-42"}


@pytest.fixture
def signup_open(settings):
    settings.ACCOUNTS_SIGNUP_ENABLED = True


@pytest.fixture
def signup_closed(settings):
    settings.ACCOUNTS_SIGNUP_ENABLED = False


def test_signup_page_shows_the_form(client, signup_open):
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password1"' in html and 'name="password2"' in html


def test_signing_up_creates_the_user_signs_them_in_and_goes_home(client, signup_open):
    response = client.post("/accounts/signup/", NEW_USER)

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = get_user_model().objects.get(username="newcomer")
    assert user.check_password("a-long-enough-pass-42")
    home = client.get("/")
    assert home.status_code == 200
    assert home.context["user"] == user


@pytest.mark.parametrize(
    "change",
    [{"password2": "something-else-42"}, {"password1": "123", "password2": "123"}, {"username": ""}],
)
def test_a_bad_signup_shows_the_errors_and_creates_nobody(client, signup_open, change):
    response = client.post("/accounts/signup/", {**NEW_USER, **change})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert 'class="errorlist' in response.content.decode()
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_the_same_username_cannot_sign_up_twice(client, signup_open, owner):
    response = client.post("/accounts/signup/", {**NEW_USER, "username": "owner"})
    assert response.status_code == 200
    assert "username" in response.context["form"].errors


def test_a_signed_in_user_is_sent_home_from_signup(client, signup_open, owner):
    client.force_login(owner)
    assert client.get("/accounts/signup/")["Location"] == "/"


def test_closed_signup_says_so_and_creates_nobody(client, signup_closed):
    page = client.get("/accounts/signup/")
    posted = client.post("/accounts/signup/", NEW_USER)

    assert page.status_code == 404
    assert "Sign-up is closed" in page.content.decode()
    assert posted.status_code == 404
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_the_login_page_links_to_signup_only_when_it_is_open(client, settings):
    settings.ACCOUNTS_SIGNUP_ENABLED = True
    assert "/accounts/signup/" in client.get("/accounts/login/").content.decode()
    settings.ACCOUNTS_SIGNUP_ENABLED = False
    assert "/accounts/signup/" not in client.get("/accounts/login/").content.decode()


def test_login_with_the_right_password_goes_where_asked(client, owner):
    response = client.post("/accounts/login/", {"username": "owner", "password": "owner-pass-123", "next": "/api/v1/chats/"})

    assert response.status_code == 302
    assert response["Location"] == "/api/v1/chats/"
    assert client.get("/api/v1/chats/").status_code == 200


def test_login_with_a_wrong_password_is_refused(client, owner):
    response = client.post("/accounts/login/", {"username": "owner", "password": "nope"})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert client.get("/").status_code == 302


def test_login_does_not_redirect_off_site(client, owner):
    response = client.post(
        "/accounts/login/", {"username": "owner", "password": "owner-pass-123", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_logout_is_a_post_that_ends_the_session(client, owner):
    client.force_login(owner)

    assert client.get("/accounts/logout/").status_code == 405  # a link cannot log anyone out
    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_pages_show_the_user_and_a_logout_button(client, owner):
    client.force_login(owner)
    html = client.get("/").content.decode()
    assert "owner" in html
    assert 'action="/accounts/logout/"' in html and 'method="post"' in html
    assert "csrfmiddlewaretoken" in html

