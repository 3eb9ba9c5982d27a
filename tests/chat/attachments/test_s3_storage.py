"""Attachments in S3-compatible object storage: moto's server on loopback stands in for S3."""

from __future__ import annotations

import uuid

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from moto.server import ThreadedMotoServer

from chat.attachments import service
from chat.models import Attachment
from tests import files
from tests.chat.api.checks import token_client

pytestmark = pytest.mark.django_db

BUCKET = "agentsite-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    name = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "location": "attachments",
                "default_acl": None,
                "file_overwrite": False,
            },
        },
    }

    def keys() -> list[str]:
        return [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]

    return keys


def test_uploads_are_stored_served_and_deleted_with_their_chat_in_s3(
    bucket, owner, chat, django_capture_on_commit_callbacks
):
    client = token_client(owner)
    response = client.post(
        f"/api/v1/chats/{chat.pk}/attachments/",
        {"file": SimpleUploadedFile("report.pdf", files.pdf("Hello from S3"))},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert bucket() == [f"attachments/{owner.pk}/{chat.pk}/{created['id']}.pdf"]

    download = client.get(created["download"])
    assert b"".join(download.streaming_content) == files.pdf("Hello from S3")

    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/chats/{chat.pk}/").status_code == 204
    assert bucket() == [] and not Attachment.objects.exists()


def test_a_refused_file_leaves_nothing_in_the_bucket(bucket, owner):
    with pytest.raises(Exception, match="encrypted"):
        service.upload(owner, uuid.uuid4(), SimpleUploadedFile("secret.pdf", files.encrypted_pdf()))
    assert bucket() == []
