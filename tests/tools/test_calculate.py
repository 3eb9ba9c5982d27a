"""calculate: exact arithmetic, and a clear refusal for anything else."""

from __future__ import annotations

import pytest

from tools import calculate
from tools.registry import ToolError


@pytest.mark.parametrize(
    "expression, result",
    [
        ("2 + 2", "2 + 2 = 4"),
        ("12 * (3 + 4)", "12 * (3 + 4) = 84"),
        ("7 / 2", "7 / 2 = 3.5"),
        ("7 // 2", "7 // 2 = 3"),
        ("-7 % 3", "-7 % 3 = 2"),
        ("2 ** 10", "2 ** 10 = 1024"),
        ("2^10", "2^10 = 1024"),
        ("3 × 4 ÷ 6", "3 × 4 ÷ 6 = 2"),
        ("0.1 + 0.2", "0.1 + 0.2 = 0.3"),
        ("sqrt(16) + abs(-2)", "sqrt(16) + abs(-2) = 6"),
        ("round(pi, 2)", "round(pi, 2) = 3.14"),
        ("max(1, 5, 3) - min(4, 2)", "max(1, 5, 3) - min(4, 2) = 3"),
        ("2 ** -1", "2 ** -1 = 0.5"),
        ("10 ** 20", "10 ** 20 = 100000000000000000000"),
        ("  1e3  ", "1e3 = 1000"),
    ],
)
async def test_arithmetic_is_computed_exactly(expression, result, context):
    assert await calculate.run({"expression": expression}, context) == {"content": result}


@pytest.mark.parametrize(
    "expression, message",
    [
        ("1 / 0", "Division by zero."),
        ("5 // 0", "Division by zero."),
        ("5 % 0", "Division by zero."),
        ("0 ** -1", "Division by zero."),
        ("2 +", "Could not read '2 +' as an arithmetic expression."),
        ("(1 + 2", "Could not read '(1 + 2' as an arithmetic expression."),
        ("9 ** 9 ** 9", "The result is too large."),
        ("10 ** 100000", "The result is too large."),
        ("2 ** 5000", "The result is too large."),
        ("1.5 ** 100000", "The exponent is too large."),
        ("1e308 * 10", "The result is too large."),
        ("(-8) ** 0.5", "The result is not a real number."),
        ("sqrt(-1)", "sqrt: math domain error."),
        ("__import__('os').system('ls')", "The functions are abs, max, min, round, sqrt."),
        ("(1).__class__", "That is not an arithmetic expression."),
        ("x + 1", "Unknown name 'x'; the constants are pi and e."),
        ("'a' * 3", "'a' is not a number."),
        ("True + 1", "True is not a number."),
        ("1 < 2", "That is not an arithmetic expression."),
        ("[1, 2]", "That is not an arithmetic expression."),
        ("1 << 1000", "Only + - * / // % and ** are supported."),
        ("~1", "Only + and - may precede a number."),
        ("", "The expression is empty."),
        ("   ", "The expression is empty."),
        ("1+" * 300 + "1", "The expression is longer than 500 characters."),
    ],
)
async def test_bad_expressions_are_refused_with_a_clear_message(expression, message, context):
    with pytest.raises(ToolError) as refused:
        await calculate.run({"expression": expression}, context)
    assert str(refused.value) == message


@pytest.mark.parametrize("tool_input", [{}, {"expression": 42}, {"expression": None}])
async def test_a_missing_or_non_text_expression_is_refused(tool_input, context):
    with pytest.raises(ToolError, match="must be text"):
        await calculate.run(tool_input, context)


def test_deep_nesting_is_refused_not_crashed():
    with pytest.raises(ToolError):
        calculate.evaluate("(" * 240 + "1" + ")" * 240)
