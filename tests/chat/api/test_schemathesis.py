"""Property-based checks of the served OpenAPI schema against the running API (Schemathesis).

Every operation is called with generated parameters and bodies, as a user who has a chat
with messages and an artifact; each response must not be a server error and must match
the schema (status, content type, body). Path ids are the user's real ones, so the happy
paths are exercised, not only the 404s.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from django.core import signals
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from chat.attachments import service as attachment_service
from tests import files
from tests.chat.api.checks import token_client
from tests.factories import make_artifact, seed_messages, tool_turn

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 20


@pytest.fixture
def keep_test_connection():
    """Requests go to the bare WSGI app, whose end-of-request hook would close the database
    connection holding the test's transaction; Django's test client unhooks it the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def user_data(owner, keep_test_connection):
    chat = seed_messages(owner, tool_turn("toolu_1") + tool_turn("toolu_2"), title="Sums")
    artifact = make_artifact(chat, kind="svg", title="Logo", content="<svg/>", versions=("<svg></svg>",))
    upload = SimpleUploadedFile("photo.png", files.image(32, 24))
    attachment = attachment_service.upload(owner, chat.pk, upload)
    client = token_client(owner)
    return {
        "chat_id": str(chat.pk),
        "artifact_id": str(artifact.pk),
        "attachment_id": str(attachment.pk),
        "headers": client._credentials,
    }


# Loaded at collection, straight from the app: the schema view needs no database.
# (``schemathesis.pytest.from_fixture`` would defer this, but it does not run on pytest 9.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# Starting a turn (POST …/messages/, …/edit/, …/regenerate/, …/compact/) or switching
# versions hands the work to the server's event loop and its database threads, which a WSGI
# call in the test's own transaction has neither of: they are checked end to end in
# test_turns.py, test_versions.py and test_context.py instead.
@schema.exclude(
    method="POST",
    path_regex=r"^/api/v1/chats/\{chat_id\}/(messages/(\{message_id\}/(edit|regenerate|switch)/)?|compact/)$",
).parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case, user_data):
    for name in ("chat_id", "artifact_id", "attachment_id"):
        # A well-formed id becomes the user's own (a malformed one stays: it tests the 404).
        if _is_uuid((case.path_parameters or {}).get(name)):
            case.path_parameters[name] = user_data[name]
    case.call_and_validate(
        headers={"Authorization": user_data["headers"]["HTTP_AUTHORIZATION"]},
        # A schema-valid cursor or password can still be wrong: a 400 for those is right.
        excluded_checks=[positive_data_acceptance],
    )
