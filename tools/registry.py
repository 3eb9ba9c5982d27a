"""Tools the model may call: name → ``Tool``, and the registry that holds them.

A tool is a plain async function ``run(input, context)`` returning a result dict:

- ``content``: what the model is told (a string or text blocks);
- ``display_data``: data the UI shows inline (display tools);
- ``artifact_data``: a reference to an artifact the tool wrote (artifact tools);
- ``requires_user_input`` and ``interactive_data`` (``question``, ``options``): the loop
  pauses until the user answers (interactive tools).

A tool reports a bad input by raising ``ToolError``; the model sees its message as an
``is_error`` result. Registries are plain objects: tests build their own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator

Event = dict[str, Any]
Emit = Callable[[Event], Awaitable[None]]


class ToolError(Exception):
    """The tool could not do what was asked; the message is shown to the model."""


class ToolKind(enum.StrEnum):
    REGULAR = "regular"
    DISPLAY = "display"
    INTERACTIVE = "interactive"
    ARTIFACT = "artifact"


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may know about its call, and its way to send progress events."""

    session_id: str
    user: Any
    tool_use_id: str
    emit: Emit


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[[dict[str, Any], ToolContext], Awaitable[dict[str, Any]]]
    kind: ToolKind = ToolKind.REGULAR
    # False for a tool whose effects must not interleave with another's: it runs alone.
    concurrent: bool = True
    # Seconds this tool may take; None uses the executor's default.
    timeout: float | None = None

    def api_schema(self) -> dict[str, Any]:
        """The tool as the Messages API describes it."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass
class ToolRegistry:
    _tools: dict[str, Tool] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: Iterable[Tool]) -> ToolRegistry:
        registry = cls()
        for tool in tools:
            registry.register(tool)
        return registry

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def api_schemas(self) -> list[dict[str, Any]]:
        return [tool.api_schema() for tool in self._tools.values()]


def builtin_tools() -> ToolRegistry:
    """A fresh registry of the built-in tools."""
    # Imported here: the tool modules import this one for ``Tool``.
    from tools import analyze_text, calculate, create_artifact, display_chart, propose_options

    return ToolRegistry.of(
        module.TOOL for module in (calculate, analyze_text, display_chart, propose_options, create_artifact)
    )
