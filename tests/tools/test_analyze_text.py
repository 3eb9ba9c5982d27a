"""analyze_text: figures the model has not seen, in its content and as display data."""

from __future__ import annotations

import pytest

from tools import analyze_text
from tools.registry import ToolError

TEXT = "The cat sat on the mat. It was happy! Was the dog happy too?"


async def test_counts_words_sentences_and_characters(context):
    result = await analyze_text.run({"text": TEXT}, context)
    data = result["display_data"]

    assert data["kind"] == "text_analysis"
    assert (data["words"], data["sentences"], data["characters"]) == (14, 3, len(TEXT))
    assert data["average_sentence_length"] == round(14 / 3, 1)
    assert data["reading_time_minutes"] == 1
    assert data["top_words"][0] == "happy"


async def test_the_content_tells_the_model_the_figures(context):
    result = await analyze_text.run({"text": TEXT}, context)
    data = result["display_data"]
    assert result["content"].startswith("Text analysis: 14 words in 3 sentences")
    assert f"Flesch reading ease {data['reading_ease']} ({data['reading_level']})" in result["content"]


async def test_simple_text_reads_easier_than_dense_text(context):
    simple = await analyze_text.run({"text": "I see a dog. The dog is big. It can run."}, context)
    dense = await analyze_text.run(
        {"text": "Institutional considerations notwithstanding, the multidimensional ramifications of "
                 "administrative reorganization necessitate comprehensive interdepartmental evaluation."},
        context,
    )
    assert simple["display_data"]["reading_ease"] > 80 > 30 > dense["display_data"]["reading_ease"]
    assert dense["display_data"]["reading_level"] == "very difficult"


async def test_text_without_a_final_stop_is_one_sentence(context):
    result = await analyze_text.run({"text": "Hello there"}, context)
    assert result["display_data"]["sentences"] == 1
    assert result["content"].startswith("Text analysis: 2 words in 1 sentence (11 characters)")


@pytest.mark.parametrize(
    "tool_input, message",
    [
        ({"text": ""}, "There is no text to analyze."),
        ({"text": "   \n\t "}, "There is no text to analyze."),
        ({"text": "?! ..."}, "There is no text to analyze."),
        ({}, "The text must be a string."),
        ({"text": ["a"]}, "The text must be a string."),
        ({"text": "a " * 60_000}, "The text is longer than 100000 characters."),
    ],
)
async def test_bad_input_is_refused(tool_input, message, context):
    with pytest.raises(ToolError) as refused:
        await analyze_text.run(tool_input, context)
    assert str(refused.value) == message
