"""display_chart: data the model computed, shown to the user as a bar, line or pie chart.

The model already knows the figures, so the result only confirms what was shown; the
data travels to the UI as ``display_data``. The data is checked here so that the UI never
receives a chart it cannot draw.
"""

from __future__ import annotations

import math
from typing import Any

from tools.registry import Tool, ToolContext, ToolError, ToolKind

CHART_TYPES = ("bar", "line", "pie")
MAX_POINTS = 50
MAX_LABEL_LENGTH = 100
MAX_TITLE_LENGTH = 200


def _text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ToolError(f"{name} must be text of at most {limit} characters.")
    return value.strip()


def chart_data(tool_input: dict[str, Any]) -> dict[str, Any]:
    chart_type = tool_input.get("type")
    if chart_type not in CHART_TYPES:
        raise ToolError(f"type must be one of {', '.join(CHART_TYPES)}, not {chart_type!r}.")
    labels, values = tool_input.get("labels"), tool_input.get("values")
    if not isinstance(labels, list) or not isinstance(values, list):
        raise ToolError("labels and values must both be lists.")
    if not 1 <= len(labels) <= MAX_POINTS:
        raise ToolError(f"A chart needs between 1 and {MAX_POINTS} points, got {len(labels)}.")
    if len(labels) != len(values):
        raise ToolError(f"There are {len(labels)} labels but {len(values)} values; they must match.")
    for label in labels:
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_LENGTH:
            raise ToolError(f"Every label must be non-empty text of at most {MAX_LABEL_LENGTH} characters.")
    for value in values:
        # bool is an int in Python, and never a chart value.
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ToolError(f"Every value must be a finite number, got {value!r}.")
    if chart_type == "pie":
        if any(value < 0 for value in values):
            raise ToolError("A pie chart cannot show negative values.")
        if sum(values) <= 0:
            raise ToolError("A pie chart needs at least one value above zero.")
    return {
        "kind": "chart",
        "chart_type": chart_type,
        "title": _text(tool_input.get("title"), "title", MAX_TITLE_LENGTH),
        "labels": [label.strip() for label in labels],
        "values": values,
        "x_label": _text(tool_input.get("x_label"), "x_label", MAX_LABEL_LENGTH),
        "y_label": _text(tool_input.get("y_label"), "y_label", MAX_LABEL_LENGTH),
    }


async def run(tool_input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    data = chart_data(tool_input)
    title = f' "{data["title"]}"' if data["title"] else ""
    points = len(data["values"])
    return {
        "content": f"The {data['chart_type']} chart{title} with {points} point{'s' if points != 1 else ''} is shown to the user.",
        "display_data": data,
    }


TOOL = Tool(
    name="display_chart",
    description=(
        "Show the user a chart of figures you already have: a bar, line or pie chart with one "
        "value per label. Compute the figures first (use calculate); the chart only displays them."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": list(CHART_TYPES)},
            "title": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_POINTS},
            "values": {"type": "array", "items": {"type": "number"}, "maxItems": MAX_POINTS},
            "x_label": {"type": "string"},
            "y_label": {"type": "string"},
        },
        "required": ["type", "labels", "values"],
    },
    run=run,
    kind=ToolKind.DISPLAY,
)
