"""Uploading, reading and removing attachments: every bad file refused, nothing stored."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from chat.models import Attachment
from tests import files
from tests.chat.api.checks import assert_error

pytestmark = pytest.mark.django_db


def upload(client, chat_id, name: str, data: bytes, content_type: str = "application/octet-stream"):
    return client.post(
        f"/api/v1/chats/{chat_id}/attachments/",
        {"file": SimpleUploadedFile(name, data, content_type=content_type)},
        format="multipart",
    )


def stored_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def chat_id():
    return uuid.uuid4()


def test_an_image_is_stored_with_what_it_is(as_owner, chat_id, _attachment_storage):
    response = upload(as_owner, chat_id, "photo.png", files.image(640, 480), "image/png")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["kind"], body["media_type"], body["width"], body["height"]) == (
        "photo.png", "image", "image/png", 640, 480,
    )
    assert body["tokens"] == 410 and body["sent"] is False and body["chat_id"] == str(chat_id)
    assert response["Location"] == f"/api/v1/attachments/{body['id']}/"
    [path] = stored_files(_attachment_storage)
    assert path.name == f"{body['id']}.png" and "photo" not in str(path)


def test_a_large_image_is_scaled_down_to_the_recommended_long_edge(as_owner, chat_id):
    response = upload(as_owner, chat_id, "wide.jpg", files.image(3000, 2000, "JPEG"))

    body = response.json()
    assert (body["width"], body["height"], body["media_type"]) == (1568, 1045, "image/jpeg")
    stored = Attachment.objects.get(pk=body["id"])
    with stored.file.open("rb") as f:
        assert Image.open(f).size == (1568, 1045)
    assert body["tokens"] == 1600  # past ~1,600 tokens the API scales it down itself


def test_a_pdf_is_opened_and_its_pages_counted(as_owner, chat_id):
    response = upload(as_owner, chat_id, "report.pdf", files.pdf("Quarterly figures rose.", "Two", "Three"))

    body = response.json()
    assert response.status_code == 201, body
    assert (body["kind"], body["media_type"], body["pages"]) == ("pdf", "application/pdf", 3)
    assert Attachment.objects.get(pk=body["id"]).excerpt.startswith("Quarterly figures rose.")
    assert body["tokens"] >= 3 * 1600


def test_a_text_file_is_accepted_as_text(as_owner, chat_id):
    response = upload(as_owner, chat_id, "notes.md", "# Notes\n\nBuy milk.\n".encode())

    body = response.json()
    assert (body["kind"], body["media_type"]) == ("text", "text/plain")


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("photo.png", b"<html><script>alert(1)</script></html>", "wrong_type"),
        ("photo.png", files.pdf("not a picture"), "wrong_type"),
        ("report.pdf", files.image(), "wrong_type"),
        ("report.pdf", b"%PDF-1.4 this is no PDF at all", "invalid_pdf"),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "invalid_image"),
        ("program.exe", b"MZ\x90\x00\x03" + b"\x00" * 100, "unsupported_type"),
        ("data.bin", b"\x00\x01\x02", "unsupported_type"),
        ("notes.txt", b"caf\xe9 latin-1, not UTF-8", "unsupported_type"),
        ("notes.txt", b"", "empty_file"),
        ("bomb.png", files.png_bomb(), "image_too_large"),
        ("secret.pdf", files.encrypted_pdf(), "encrypted_pdf"),
    ],
    ids=[
        "html-named-png", "pdf-named-png", "png-named-pdf", "broken-pdf", "broken-jpeg", "exe", "binary",
        "not-utf8", "empty", "decompression-bomb", "encrypted-pdf",
    ],
)
def test_a_bad_file_is_refused_and_nothing_is_stored(as_owner, chat_id, _attachment_storage, name, data, code):
    body = assert_error(upload(as_owner, chat_id, name, data), 400, code)

    assert name in body["message"] or code == "unsupported_type"
    assert not Attachment.objects.exists()
    assert stored_files(_attachment_storage) == []


def test_a_pdf_over_the_page_limit_is_refused(as_owner, chat_id, settings):
    settings.ATTACHMENT_MAX_PDF_PAGES = 2
    assert_error(upload(as_owner, chat_id, "long.pdf", files.pdf("1", "2", "3")), 400, "too_many_pages")
    assert not Attachment.objects.exists()


def test_a_file_over_the_size_limit_is_refused(as_owner, chat_id, settings, _attachment_storage):
    settings.ATTACHMENT_MAX_BYTES = 100_000
    data = files.pdf("big", padding=150_000)

    assert_error(upload(as_owner, chat_id, "big.pdf", data), 413, "file_too_large")
    assert not Attachment.objects.exists() and stored_files(_attachment_storage) == []


def test_an_upload_past_the_size_limit_is_stopped_while_it_streams(as_owner, chat_id, settings):
    """The upload handler stops reading once the limit is passed, before the parser has the file."""
    settings.ATTACHMENT_MAX_BYTES = 10_000
    from chat.api.attachments import SizeLimit

    handler = SizeLimit()
    handler.receive_data_chunk(b"x" * 6000, 0)
    with pytest.raises(Exception, match="at most"):
        handler.receive_data_chunk(b"x" * 6000, 6000)


def test_more_unsent_files_than_a_message_carries_are_refused(as_owner, chat_id, settings):
    settings.ATTACHMENT_MAX_PER_MESSAGE = 2
    for i in range(2):
        assert upload(as_owner, chat_id, f"{i}.png", files.image(10, 10)).status_code == 201

    assert_error(upload(as_owner, chat_id, "2.png", files.image(10, 10)), 400, "too_many_attachments")
    assert Attachment.objects.count() == 2


def test_not_multipart_is_a_415(as_owner, chat_id):
    response = as_owner.post(f"/api/v1/chats/{chat_id}/attachments/", {"file": "x"}, format="json")
    assert_error(response, 415)


def test_someone_elses_chat_is_a_404(as_owner, as_stranger, chat):
    assert_error(upload(as_stranger, chat.pk, "photo.png", files.image()), 404)
    assert not Attachment.objects.exists()


def test_a_file_is_served_only_to_its_owner_as_an_attachment(as_owner, as_stranger, anonymous, chat_id):
    created = upload(as_owner, chat_id, "notes.html", b"<html><script>alert(1)</script></html>").json()
    url = created["download"]

    response = as_owner.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"<html><script>alert(1)</script></html>"
    assert response["Content-Type"] == "text/plain; charset=utf-8"  # never rendered as HTML
    assert response["Content-Disposition"] == 'attachment; filename="notes.html"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert_error(as_stranger.get(url), 404)
    assert_error(as_stranger.get(f"/api/v1/attachments/{created['id']}/"), 404)
    assert anonymous.get(url).status_code == 401


def test_an_image_download_keeps_its_type(as_owner, chat_id):
    created = upload(as_owner, chat_id, "photo.png", files.image(20, 10)).json()
    response = as_owner.get(created["download"])
    assert response["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).size == (20, 10)


def test_an_unsent_file_can_be_removed_a_sent_one_cannot(
    as_owner, as_stranger, chat_id, _attachment_storage, django_capture_on_commit_callbacks
):
    first = upload(as_owner, chat_id, "a.png", files.image(10, 10)).json()
    second = upload(as_owner, chat_id, "b.png", files.image(10, 10)).json()
    Attachment.objects.filter(pk=second["id"]).update(sent=True)

    assert_error(as_stranger.delete(f"/api/v1/attachments/{first['id']}/"), 404)
    with django_capture_on_commit_callbacks(execute=True):
        assert as_owner.delete(f"/api/v1/attachments/{first['id']}/").status_code == 204
    assert_error(as_owner.delete(f"/api/v1/attachments/{second['id']}/"), 409, "attachment_sent")
    assert [p.name for p in stored_files(_attachment_storage)] == [f"{second['id']}.png"]


def test_a_chats_files_are_listed_for_its_owner(as_owner, as_stranger, chat_id):
    upload(as_owner, chat_id, "a.png", files.image(10, 10))
    upload(as_stranger, chat_id, "theirs.png", files.image(10, 10))

    assert [a["name"] for a in as_owner.get(f"/api/v1/chats/{chat_id}/attachments/").json()] == ["a.png"]


def test_deleting_a_chat_deletes_its_files(as_owner, chat, _attachment_storage, django_capture_on_commit_callbacks):
    upload(as_owner, chat.pk, "a.png", files.image(10, 10))
    other = upload(as_owner, uuid.uuid4(), "kept.png", files.image(10, 10)).json()

    with django_capture_on_commit_callbacks(execute=True):
        assert as_owner.delete(f"/api/v1/chats/{chat.pk}/").status_code == 204

    assert list(Attachment.objects.values_list("name", flat=True)) == ["kept.png"]
    assert [p.name for p in stored_files(_attachment_storage)] == [f"{other['id']}.png"]


def test_exports_list_a_chats_files(as_owner, chat):
    created = upload(as_owner, chat.pk, "photo.png", files.image(64, 48)).json()
    upload(as_owner, chat.pk, "report.pdf", files.pdf("One"))

    exported = json.loads(b"".join(as_owner.get(f"/api/v1/chats/{chat.pk}/export/?format=json").streaming_content))
    assert [(a["id"], a["name"], a["width"]) for a in exported["attachments"]][0] == (created["id"], "photo.png", 64)
    assert [a["name"] for a in exported["attachments"]] == ["photo.png", "report.pdf"]
    markdown = b"".join(as_owner.get(f"/api/v1/chats/{chat.pk}/export/?format=markdown").streaming_content).decode()
    assert "# Attachments\n\n- photo.png (image/png, " in markdown and "- report.pdf (application/pdf, " in markdown


def test_a_sent_file_shows_in_the_markdown_transcript():
    from chat.export import _block_markdown

    block = {"type": "image", "source": {"type": "attachment", "kind": "image", "name": "photo.png", "width": 640, "height": 480}}
    assert _block_markdown(block, {}) == ["_Attached: photo.png, a 640×480 image._"]


def test_the_admin_lists_attachments_without_serving_them(admin_client, as_owner, chat_id):
    created = upload(as_owner, chat_id, "report.pdf", files.pdf("One", "Two")).json()

    html = admin_client.get("/admin/chat/attachment/").content.decode()
    assert "report.pdf" in html and "2 pages" in html
    page = admin_client.get(f"/admin/chat/attachment/{created['id']}/change/").content.decode()
    assert "One Two" in page and created["download"] not in page


def test_deleting_a_user_deletes_their_files(as_owner, owner, chat_id, _attachment_storage, django_capture_on_commit_callbacks):
    upload(as_owner, chat_id, "a.png", files.image(10, 10))
    assert len(stored_files(_attachment_storage)) == 1

    with django_capture_on_commit_callbacks(execute=True):
        owner.delete()

    assert not Attachment.objects.exists() and stored_files(_attachment_storage) == []


def test_uploads_never_sent_go_after_a_while(
    as_owner, chat_id, settings, _attachment_storage, django_capture_on_commit_callbacks
):
    settings.ATTACHMENT_UNSENT_HOURS = 24
    old = upload(as_owner, chat_id, "old.png", files.image(10, 10)).json()
    sent = upload(as_owner, chat_id, "sent.png", files.image(10, 10)).json()
    Attachment.objects.filter(pk__in=[old["id"], sent["id"]]).update(created_at=timezone.now() - timedelta(hours=25))
    Attachment.objects.filter(pk=sent["id"]).update(sent=True)

    with django_capture_on_commit_callbacks(execute=True):
        fresh = upload(as_owner, chat_id, "new.png", files.image(10, 10)).json()

    assert set(Attachment.objects.values_list("name", flat=True)) == {"sent.png", "new.png"}
    assert {p.name for p in stored_files(_attachment_storage)} == {f"{sent['id']}.png", f"{fresh['id']}.png"}
