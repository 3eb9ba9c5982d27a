"""propose_options: asks, and leaves the answer to the loop."""

from __future__ import annotations

import pytest

from tools import propose_options
from tools.registry import ToolError


async def test_it_asks_for_input_with_the_question_and_options(context):
    result = await propose_options.run({"question": " Which? ", "options": [" A ", "B"]}, context)
    assert result == {
        "content": "",
        "requires_user_input": True,
        "interactive_data": {"question": "Which?", "options": ["A", "B"]},
    }


@pytest.mark.parametrize(
    "tool_input, message",
    [
        ({"question": "", "options": ["A", "B"]}, "question must be non-empty text."),
        ({"options": ["A", "B"]}, "question must be non-empty text."),
        ({"question": "Q", "options": ["A"]}, "options must be a list of 2 to 8 choices."),
        ({"question": "Q", "options": [str(i) for i in range(9)]}, "options must be a list of 2 to 8 choices."),
        ({"question": "Q", "options": "A, B"}, "options must be a list of 2 to 8 choices."),
        ({"question": "Q", "options": ["A", " "]}, "Every option must be non-empty text of at most 200 characters."),
        ({"question": "Q", "options": ["A", "A "]}, "The options must all be different."),
        ({"question": "Q" * 501, "options": ["A", "B"]}, "question must be at most 500 characters."),
    ],
)
async def test_a_malformed_question_is_refused(tool_input, message, context):
    with pytest.raises(ToolError) as refused:
        await propose_options.run(tool_input, context)
    assert str(refused.value) == message
