"""propose_options: ask the user to pick one of a few options; the loop pauses meanwhile.

The result has no content yet: the loop stores the question and, when the user answers,
completes the result with ``User selected: <choice>`` (or ``User replied: <text>`` when
the user types an answer instead).
"""

from __future__ import annotations

from typing import Any

from tools.registry import Tool, ToolContext, ToolError, ToolKind

MIN_OPTIONS, MAX_OPTIONS = 2, 8
MAX_QUESTION_LENGTH = 500
MAX_OPTION_LENGTH = 200
# How the answer reads in the tool result the model is sent (chat.runs.turns writes it; the
# chat search indexes what follows it).
SELECTED_PREFIX = "User selected: "
REPLIED_PREFIX = "User replied: "


def question_and_options(tool_input: dict[str, Any]) -> tuple[str, list[str]]:
    question, options = tool_input.get("question"), tool_input.get("options")
    if not isinstance(question, str) or not question.strip():
        raise ToolError("question must be non-empty text.")
    if len(question) > MAX_QUESTION_LENGTH:
        raise ToolError(f"question must be at most {MAX_QUESTION_LENGTH} characters.")
    if not isinstance(options, list) or not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise ToolError(f"options must be a list of {MIN_OPTIONS} to {MAX_OPTIONS} choices.")
    cleaned = []
    for option in options:
        if not isinstance(option, str) or not option.strip() or len(option) > MAX_OPTION_LENGTH:
            raise ToolError(f"Every option must be non-empty text of at most {MAX_OPTION_LENGTH} characters.")
        cleaned.append(option.strip())
    if len(set(cleaned)) != len(cleaned):
        raise ToolError("The options must all be different.")
    return question.strip(), cleaned


async def run(tool_input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    question, options = question_and_options(tool_input)
    return {
        "content": "",
        "requires_user_input": True,
        "interactive_data": {"question": question, "options": options},
    }


TOOL = Tool(
    name="propose_options",
    description=(
        "Ask the user to choose one of a few options and wait for the answer. Use it when the "
        "next step depends on the user's preference. The result is the user's choice "
        "('User selected: ...') or, if they typed something else, their reply ('User replied: ...')."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "question": {"type": "string"},
            "options": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": MIN_OPTIONS,
                "maxItems": MAX_OPTIONS,
            },
        },
        "required": ["question", "options"],
    },
    run=run,
    kind=ToolKind.INTERACTIVE,
)
