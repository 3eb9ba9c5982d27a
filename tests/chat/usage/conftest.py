"""The agent tests' fixtures (a chat of the owner's, its MessageManager), over the
in-process cache: these tests are about the ledger and quotas, not storage."""

import pytest

from tests.chat.agent.conftest import local_storage, manager, session_id  # noqa: F401


@pytest.fixture
def storage(local_storage):  # noqa: F811
    return local_storage
