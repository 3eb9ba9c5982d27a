"""A model that streams as fast as it can: for load tests and benchmarks.

The newest user message says how much: ``firehose <deltas> [<chars per delta>]``; anything
else gets a one-word reply. Served processes use it with
``AGENT_PROVIDER=tests.fakes.firehose.FirehoseProvider``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncIterator

from chat.agent.providers.base import ModelEvent, ModelReply, Provider, TextDelta, usage

COMMAND = re.compile(r"firehose\s+(\d+)(?:\s+(\d+))?")


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return " ".join(b.get("text", "") for b in message["content"] if b.get("type") == "text")
    return ""


class FirehoseProvider(Provider):
    name = "firehose"
    display_name = "Firehose (load test model)"
    model = "firehose"

    async def stream(
        self, *, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], context: Any = ()
    ) -> AsyncIterator[ModelEvent]:
        found = COMMAND.search(_last_user_text(messages))
        count, size = (int(found.group(1)), int(found.group(2) or 8)) if found else (1, 4)
        for index in range(count):
            yield TextDelta(f"{index:07d} ".ljust(size, "x")[:size])
            if index % 100 == 99:
                await asyncio.sleep(0)  # let the rest of the process run, as a network read would
        # The stored reply is a summary, not the streamed megabytes: what a load test
        # measures is the stream, and a huge stored message would weigh on every later step.
        summary = f"(firehose: {count} deltas of {size} characters)"
        yield ModelReply(content=[{"type": "text", "text": summary}], stop_reason="end_turn", usage=usage(output_tokens=count))

    async def title(self, text: str) -> str:
        return "Firehose"
