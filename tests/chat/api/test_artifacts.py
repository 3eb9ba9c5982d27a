"""GET /api/v1/chats/<id>/artifacts/, /api/v1/artifacts/<id>/ and its download."""

from __future__ import annotations

import uuid

import pytest

from tests.chat.api.checks import assert_error
from tests.factories import make_artifact, seed_history

pytestmark = pytest.mark.django_db


def chat_artifacts(chat_id) -> str:
    return f"/api/v1/chats/{chat_id}/artifacts/"


def detail(artifact_id) -> str:
    return f"/api/v1/artifacts/{artifact_id}/"


def download(artifact_id) -> str:
    return f"/api/v1/artifacts/{artifact_id}/download/"


@pytest.fixture
def notes(chat):
    return make_artifact(chat, title="Meeting notes", content="# v3", versions=("# v1", "# v2"))


# --- a chat's artifacts ---------------------------------------------------------------------


def test_list_shows_a_chats_artifacts_in_order_without_their_content(as_owner, chat, owner):
    first = make_artifact(chat, title="First")
    second = make_artifact(chat, kind="svg", title="Second", content="<svg/>")
    make_artifact(seed_history(owner, 1), title="Another chat's")

    body = as_owner.get(chat_artifacts(chat.pk)).json()

    assert [a["id"] for a in body["results"]] == [str(first.pk), str(second.pk)]
    assert body["results"][1] == {
        "id": str(second.pk),
        "chat": str(chat.pk),
        "tool_use_id": "",
        "kind": "svg",
        "title": "Second",
        "status": "complete",
        "version": 1,
        "created_at": body["results"][1]["created_at"],
        "updated_at": body["results"][1]["updated_at"],
    }


def test_list_of_someone_elses_chat_is_404(as_stranger, chat, notes):
    assert_error(as_stranger.get(chat_artifacts(chat.pk)), 404, "not_found")


def test_list_anonymous_is_401(anonymous, chat):
    assert_error(anonymous.get(chat_artifacts(chat.pk)), 401)


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "x"}, {"cursor": "bz14"}])
def test_list_bad_parameters_are_400(as_owner, chat, params):
    assert_error(as_owner.get(chat_artifacts(chat.pk), params), 400, "invalid")


# --- one artifact ---------------------------------------------------------------------------


def test_detail_has_the_content_and_earlier_versions(as_owner, notes):
    body = as_owner.get(detail(notes.pk)).json()

    assert (body["title"], body["content"], body["version"]) == ("Meeting notes", "# v3", 3)
    assert [(v["version"], v["content"]) for v in body["versions"]] == [(1, "# v1"), (2, "# v2")]


def test_someone_elses_artifact_is_the_same_404_as_a_missing_one(as_stranger, notes):
    theirs = assert_error(as_stranger.get(detail(notes.pk)), 404)
    missing = assert_error(as_stranger.get(detail(uuid.uuid4())), 404)
    assert theirs == missing


def test_detail_anonymous_is_401(anonymous, notes):
    assert_error(anonymous.get(detail(notes.pk)), 401)


def test_a_malformed_artifact_id_is_a_json_404(as_owner):
    assert_error(as_owner.get("/api/v1/artifacts/123/"), 404, "not_found")


# --- download -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "title", "content_type", "filename"),
    [
        ("markdown", "Meeting notes", "text/markdown; charset=utf-8", "Meeting-notes.md"),
        ("code", "fib.py", "text/plain; charset=utf-8", "fib.py"),
        ("code:rust", "Fibonacci", "text/plain; charset=utf-8", "Fibonacci.rs"),
        ("code", "Fibonacci", "text/plain; charset=utf-8", "Fibonacci.txt"),
        ("mermaid", "Flow", "text/plain; charset=utf-8", "Flow.mmd"),
        ("svg", "Logo", "image/svg+xml", "Logo.svg"),
        ("html", "Page", "text/html; charset=utf-8", "Page.html"),
        ("something-new", "Thing", "text/plain; charset=utf-8", "Thing.txt"),
    ],
)
def test_download_is_an_attachment_named_and_typed_by_kind(as_owner, chat, kind, title, content_type, filename):
    artifact = make_artifact(chat, kind=kind, title=title, content="body")

    response = as_owner.get(download(artifact.pk))

    assert response.status_code == 200
    assert response.content == b"body"
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'


@pytest.mark.parametrize("kind", ["svg", "html"])
def test_svg_and_html_downloads_cannot_run_script_in_our_origin(as_owner, chat, kind):
    artifact = make_artifact(chat, kind=kind, title="x", content="<svg onload='alert(1)'/>")

    response = as_owner.get(download(artifact.pk))

    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    policy = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    assert "default-src 'none'" in policy
    assert "sandbox" in policy
    assert not any("script" in part for part in policy)


def test_download_file_name_cannot_escape_or_inject_headers(as_owner, chat):
    artifact = make_artifact(chat, title='../../etc/pass"wd\r\nX: y', content="x")

    disposition = as_owner.get(download(artifact.pk))["Content-Disposition"]

    assert disposition == 'attachment; filename="etcpasswdX-y.md"'


def test_download_keeps_a_non_ascii_title(as_owner, chat):
    artifact = make_artifact(chat, title="Résumé", content="x")
    disposition = as_owner.get(download(artifact.pk))["Content-Disposition"]
    assert disposition == "attachment; filename*=utf-8''R%C3%A9sum%C3%A9.md"


def test_download_ignores_what_accept_asks_for(as_owner, notes):
    response = as_owner.get(download(notes.pk), HTTP_ACCEPT="text/markdown")
    assert response.status_code == 200


def test_downloading_someone_elses_artifact_is_404(as_stranger, notes):
    assert_error(as_stranger.get(download(notes.pk)), 404)


def test_download_anonymous_is_401(anonymous, notes):
    assert_error(anonymous.get(download(notes.pk)), 401)
