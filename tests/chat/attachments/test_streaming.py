"""A large upload is checked and stored from the temporary file Django streamed it to:
never read into memory whole (``bin/bench attachments`` measures a 30 MB PDF end to end)."""

from __future__ import annotations

import tracemalloc
import uuid

import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile

from chat.attachments import service
from tests import files

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def test_a_large_pdf_is_stored_without_being_held_in_memory(owner, _attachment_storage):
    data = files.pdf(*[f"Page {i}" for i in range(1, 21)], padding=12 * MB)
    upload = TemporaryUploadedFile("big.pdf", "application/pdf", len(data), None)
    upload.write(data)
    upload.flush()
    size = len(data)
    del data

    tracemalloc.start()
    try:
        attachment = service.upload(owner, uuid.uuid4(), upload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        upload.close()  # as Django does at the end of a request (the file was moved away)

    assert attachment.pages == 20 and attachment.size == size
    assert peak < size / 8, f"{peak:,} bytes allocated for a {size:,}-byte file"
    [stored] = [p for p in _attachment_storage.rglob("*.pdf")]
    assert stored.stat().st_size == size
