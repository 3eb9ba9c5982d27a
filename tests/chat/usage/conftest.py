"""The agent tests' fixtures (a chat of the owner's, its MessageManager, storage)."""

from tests.chat.agent.conftest import local_storage, manager, session_id  # noqa: F401
