import pytest

from tests.factories import seed_messages, tool_turn


@pytest.fixture
def chat(owner):
    return seed_messages(owner, tool_turn("toolu_1"), title="Sums")
