"""display_chart: valid charts go to the UI; data it could not draw is refused."""

from __future__ import annotations

import pytest

from tools import display_chart
from tools.registry import ToolError


@pytest.mark.parametrize("chart_type", ["bar", "line", "pie"])
async def test_a_valid_chart_is_displayed_with_minimal_content(chart_type, context):
    tool_input = {"type": chart_type, "title": "Sales", "labels": ["Q1", "Q2", "Q3"], "values": [3, 4.5, 0]}
    result = await display_chart.run(tool_input, context)

    assert result["content"] == f'The {chart_type} chart "Sales" with 3 points is shown to the user.'
    assert result["display_data"] == {
        "kind": "chart", "chart_type": chart_type, "title": "Sales", "labels": ["Q1", "Q2", "Q3"],
        "values": [3, 4.5, 0], "x_label": "", "y_label": "",
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"type": "scatter"}, "type must be one of bar, line, pie, not 'scatter'."),
        ({"labels": ["a"]}, "There are 1 labels but 2 values; they must match."),
        ({"labels": [], "values": []}, "A chart needs between 1 and 50 points, got 0."),
        ({"labels": [str(i) for i in range(51)], "values": list(range(51))}, "A chart needs between 1 and 50 points, got 51."),
        ({"values": [1, "2"]}, "Every value must be a finite number, got '2'."),
        ({"values": [1, True]}, "Every value must be a finite number, got True."),
        ({"values": [1, float("nan")]}, "Every value must be a finite number, got nan."),
        ({"values": [1, float("inf")]}, "Every value must be a finite number, got inf."),
        ({"labels": ["a", ""]}, "Every label must be non-empty text of at most 100 characters."),
        ({"labels": ["a", 2]}, "Every label must be non-empty text of at most 100 characters."),
        ({"values": None}, "labels and values must both be lists."),
        ({"type": "pie", "values": [1, -1]}, "A pie chart cannot show negative values."),
        ({"type": "pie", "values": [0, 0]}, "A pie chart needs at least one value above zero."),
        ({"title": 5}, "title must be text of at most 200 characters."),
    ],
)
async def test_bad_chart_data_is_refused(change, message, context):
    tool_input = {"type": "bar", "labels": ["a", "b"], "values": [1, 2], **change}
    with pytest.raises(ToolError) as refused:
        await display_chart.run(tool_input, context)
    assert str(refused.value) == message
