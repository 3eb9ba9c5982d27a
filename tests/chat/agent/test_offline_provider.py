"""The offline demo model follows its documented contract (docs/offline-model.md)."""

from __future__ import annotations

import pytest

from chat.agent.providers import get_provider
from chat.agent.providers.base import ModelReply, TextDelta, UsageSoFar
from chat.agent.providers.offline import OfflineProvider
from chat.models import Artifact
from tests.chat.agent.conftest import assert_history_valid, collect, of_type, turn
from tools.registry import builtin_tools

TOOLS = builtin_tools().api_schemas()


@pytest.fixture
def storage(local_storage):
    return local_storage


async def reply_to(text: str, tools=TOOLS) -> tuple[list[str], ModelReply]:
    model = OfflineProvider(word_delay=0)
    out = await collect(model.stream(system="", messages=[{"role": "user", "content": [{"type": "text", "text": text}]}], tools=tools))
    # First the input it read, as a call's usage so far (what a cancel is charged).
    start, *deltas, reply = out
    assert isinstance(start, UsageSoFar) and start.usage["input_tokens"] == reply.usage["input_tokens"] > 0
    assert all(isinstance(d, TextDelta) for d in deltas) and isinstance(reply, ModelReply)
    return [d.text for d in deltas], reply


def tool_calls(reply: ModelReply) -> list[tuple[str, dict]]:
    return [(b["name"], b["input"]) for b in reply.content if b["type"] == "tool_use"]


async def test_calculate_followed_by_an_expression_calls_calculate():
    _, reply = await reply_to("calculate 12 * (3 + 4)")
    assert tool_calls(reply) == [("calculate", {"expression": "12 * (3 + 4)"})]
    assert reply.stop_reason == "tool_use"


async def test_analyze_calls_analyze_text_on_the_rest_of_the_message():
    _, reply = await reply_to("Please analyze: The cat sat. The dog ran.")
    assert tool_calls(reply) == [("analyze_text", {"text": "Please The cat sat. The dog ran."})]


async def test_chart_calls_display_chart_with_sample_data_of_the_type_named():
    _, bar = await reply_to("show me a chart")
    _, pie = await reply_to("a pie chart please")
    _, line = await reply_to("Line chart!")
    assert [tool_calls(r)[0][1]["type"] for r in (bar, pie, line)] == ["bar", "pie", "line"]
    assert tool_calls(bar)[0][0] == "display_chart"
    assert len(tool_calls(bar)[0][1]["labels"]) == len(tool_calls(bar)[0][1]["values"])


@pytest.mark.parametrize("text", ["Let me choose", "What are my options?", "show options"])
async def test_choose_or_options_proposes_three_options(text):
    _, reply = await reply_to(text)
    [(name, tool_input)] = tool_calls(reply)
    assert name == "propose_options" and len(tool_input["options"]) == 3


@pytest.mark.parametrize(
    "text, kind",
    [("write me a note", "markdown"), ("make an artifact", "markdown"), ("write a diagram", "mermaid"),
     ("write an SVG", "svg"), ("write some code", "code")],
)
async def test_write_or_artifact_creates_an_artifact(text, kind):
    _, reply = await reply_to(text)
    [(name, tool_input)] = tool_calls(reply)
    assert (name, tool_input["kind"]) == ("create_artifact", kind)
    assert tool_input["title"] and tool_input["content"]


async def test_anything_else_is_a_streamed_reply_that_quotes_the_user():
    deltas, reply = await reply_to("Tell me about penguins")
    text = reply.content[0]["text"]
    assert "“Tell me about penguins”" in text
    assert "".join(deltas) == text
    assert len(deltas) == len(text.split()) > 10  # one delta per word
    assert tool_calls(reply) == [] and reply.stop_reason == "end_turn"


async def test_words_like_chart_inside_other_words_do_not_trigger_tools():
    _, reply = await reply_to("The charter was rewritten by the analyzer")
    assert tool_calls(reply) == []


async def test_it_only_calls_tools_it_is_offered():
    _, reply = await reply_to("calculate 1+1", tools=[])
    assert tool_calls(reply) == [] and "calculate 1+1" in reply.content[0]["text"]


async def test_it_is_deterministic():
    assert await reply_to("calculate 2+2") == await reply_to("calculate 2+2")
    assert await reply_to("hello") == await reply_to("hello")


async def test_the_time_note_is_not_mistaken_for_the_users_words():
    model = OfflineProvider(word_delay=0)
    note = {"type": "text", "text": "<context>Current time: 2030-01-01 10:00 UTC</context>"}
    *_, reply = await collect(
        model.stream(system="", messages=[{"role": "user", "content": [{"type": "text", "text": "chart"}, note]}], tools=TOOLS)
    )
    assert tool_calls(reply)[0][0] == "display_chart"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "text, expected",
    [
        ("calculate 12 * (3 + 4)", "The result of 12 * (3 + 4) is 84."),
        ("calculate 1/0", "The calculate tool reported a problem: Division by zero."),
        ("analyze The cat sat on the mat.", "Here is what I found: 6 words in 1 sentence "),
        ("analyze", "The analyze_text tool reported a problem: There is no text to analyze."),
        ("chart", "The chart above shows the sample figures."),
        ("write a note", "Your artifact “Notes on your request” is ready in the artifact panel."),
    ],
)
async def test_after_a_tool_it_writes_a_sentence_that_uses_the_result(manager, session_id, text, expected):
    events = await collect(turn(manager, OfflineProvider(word_delay=0), builtin_tools(), text))

    assert events[-1]["type"] == "complete"
    final = of_type(events, "message")[-1]["content"][0]["text"]
    assert final.startswith(expected)
    await assert_history_valid(session_id)


@pytest.mark.django_db(transaction=True)
async def test_the_offline_model_produces_an_artifact_with_progress(manager, session_id):
    events = await collect(turn(manager, OfflineProvider(word_delay=0), builtin_tools(), "write some code"))

    updates = of_type(events, "artifact")
    assert updates[0]["status"] == "generating" and updates[-1]["status"] == "complete"
    assert [u["progress"] for u in updates] == sorted(u["progress"] for u in updates)
    artifact = await Artifact.objects.aget(id=updates[-1]["artifact_id"])
    assert (artifact.kind, artifact.title, artifact.status) == ("code", "fibonacci.py", "complete")
    assert artifact.content == updates[-1]["content"]


async def test_titles_are_the_message_as_typed_punctuation_and_all():
    model = OfflineProvider(word_delay=0)
    assert await model.title("calculate 1/0") == "Calculate 1/0"
    assert await model.title("  what is   2+2?\n") == "What is 2+2?"
    assert await model.title("?!") == "New chat"


async def test_different_first_messages_never_share_a_title():
    model = OfflineProvider(word_delay=0)
    messages = [
        "calculate 2+2",
        "calculate 2*2",
        "calculate 2-2",
        "how do I bake sourdough bread at home without a scale, and how long does it take?",
        "how do I bake sourdough bread at home without a scale, and what flour should I use?",
    ]
    titles = [await model.title(text) for text in messages]
    assert len(set(titles)) == len(messages), titles
    long_title = titles[3]
    assert long_title.startswith("How do I bake sourdough bread at home without a…") and len(long_title) <= 60
    assert await model.title(messages[3]) == long_title  # the same message, the same title


def test_without_an_api_key_the_offline_model_answers_and_says_so(settings):
    settings.OFFLINE_MODEL_WORD_DELAY = 0.02
    provider = get_provider()
    assert isinstance(provider, OfflineProvider)
    assert provider.word_delay == 0.02
    assert "Offline demo model" in provider.display_name


async def test_long_writes_a_long_reply_in_paragraphs_and_a_tool_word_still_wins():
    from chat import history
    from chat.agent.providers.offline import LONG_REPLY_TOKENS

    deltas, reply = await reply_to("tell me a long story")
    text = reply.content[0]["text"]
    assert tool_calls(reply) == [] and LONG_REPLY_TOKENS <= history.estimate_tokens(text) < LONG_REPLY_TOKENS + 100
    assert "".join(deltas) == text and len(deltas) == text.count("\n\n") + 1  # a delta per paragraph
    assert (await reply_to("tell me a long story"))[1] == reply  # deterministic
    _, charted = await reply_to("a long chart")
    assert tool_calls(charted)[0][0] == "display_chart"
    _, short = await reply_to("belong")  # a whole word only
    assert "offline demo model" in short.content[0]["text"]
