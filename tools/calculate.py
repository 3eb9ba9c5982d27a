"""calculate: arithmetic, parsed with ``ast`` and walked over a whitelist (never eval).

Only numbers, + - * / // % **, unary signs, parentheses, a few functions (sqrt, abs,
round, min, max) and the constants pi and e are allowed. Sizes are bounded so that an
expression like ``9**9**9`` is refused instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

from tools.registry import Tool, ToolContext, ToolError

MAX_EXPRESSION_LENGTH = 500
# Integers above this many bits are refused: enough for any everyday figure (about 1,200
# decimal digits), small enough that every step stays instant.
MAX_INT_BITS = 4000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("The result is too large.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("The result is too large.")
    return value


def _power(base: Any, exponent: Any) -> Any:
    # Decide from the sizes before computing: 10**10**6 would take seconds to even build.
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
            raise ToolError("The result is too large.")
    if isinstance(exponent, (int, float)) and abs(exponent) > 10_000:
        raise ToolError("The exponent is too large.")
    if base == 0 and exponent < 0:
        raise ToolError("Division by zero.")
    result = base**exponent
    if isinstance(result, complex):
        raise ToolError("The result is not a real number.")
    return result


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):  # bool is an int, and is not a number here
            raise ToolError(f"{node.value!r} is not a number.")
        return _check_size(node.value)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_size(_power(left, right))
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ToolError("Only + - * / // % and ** are supported.")
        try:
            return _check_size(op(left, right))
        except ZeroDivisionError:
            raise ToolError("Division by zero.") from None
    if isinstance(node, ast.UnaryOp):
        op = _UNARY.get(type(node.op))
        if op is None:
            raise ToolError("Only + and - may precede a number.")
        return op(_evaluate(node.operand))
    if isinstance(node, ast.Name):
        if node.id not in _CONSTANTS:
            raise ToolError(f"Unknown name {node.id!r}; the constants are pi and e.")
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            raise ToolError(f"The functions are {', '.join(sorted(_FUNCTIONS))}.")
        args = [_evaluate(arg) for arg in node.args]
        try:
            return _check_size(_FUNCTIONS[node.func.id](*args))
        except (TypeError, ValueError) as exc:
            raise ToolError(f"{node.func.id}: {exc}.") from None
    raise ToolError("That is not an arithmetic expression.")


def evaluate(expression: Any) -> int | float:
    """The value of an arithmetic expression; raises ToolError for anything else."""
    if not isinstance(expression, str):
        raise ToolError("The expression must be text, such as 2 * (3 + 4).")
    if not expression.strip():
        raise ToolError("The expression is empty.")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_LENGTH} characters.")
    # People write × and ^; Python's ** is what they mean by ^ in a calculator.
    source = expression.replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError):
        raise ToolError(f"Could not read {expression!r} as an arithmetic expression.") from None
    try:
        return _evaluate(tree)
    except OverflowError:
        raise ToolError("The result is too large.") from None
    except RecursionError:
        raise ToolError("The expression is nested too deeply.") from None


def format_number(value: int | float) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    return str(value)


async def run(tool_input: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    expression = tool_input.get("expression")
    value = evaluate(expression)
    return {"content": f"{expression.strip()} = {format_number(value)}"}


TOOL = Tool(
    name="calculate",
    description=(
        "Evaluate an arithmetic expression exactly. Supports + - * / // % ** (or ^), "
        "parentheses, sqrt, abs, round, min, max, pi and e. Use it for any arithmetic "
        "instead of working it out yourself."
    ),
    input_schema={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "For example (2 + 3) * 4 / 7"}},
        "required": ["expression"],
    },
    run=run,
)
