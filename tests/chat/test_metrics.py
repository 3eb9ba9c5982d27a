"""/metrics: what a turn records, and who may read it."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from tests.chat.test_consumers import connect, send, until

pytestmark = pytest.mark.django_db(transaction=True)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_turn_is_counted_timed_and_its_tokens_and_tools_recorded(owner):
    before = {
        "turns": value("agentsite_turns_started_total", kind="message"),
        "first": value("agentsite_first_delta_seconds_count"),
        "calls": value("agentsite_model_call_seconds_count", provider="offline"),
        "output": value("agentsite_model_tokens_total", provider="offline", kind="output"),
        "tools": value("agentsite_tool_calls_total", tool="calculate", outcome="ok"),
        "appends": value("agentsite_event_log_append_seconds_count"),
        "sockets": value("agentsite_sockets_open"),
    }
    communicator, _ = await connect(owner, uuid.uuid4())
    assert value("agentsite_sockets_open") == before["sockets"] + 1
    await send(communicator, type="user_message", text="calculate 6 * 7")
    await until(communicator, "complete")

    assert value("agentsite_turns_started_total", kind="message") == before["turns"] + 1
    assert value("agentsite_first_delta_seconds_count") == before["first"] + 1
    assert value("agentsite_model_call_seconds_count", provider="offline") == before["calls"] + 2  # the call, then its tool's answer
    assert value("agentsite_model_tokens_total", provider="offline", kind="output") > before["output"]
    assert value("agentsite_tool_calls_total", tool="calculate", outcome="ok") == before["tools"] + 1
    assert value("agentsite_event_log_append_seconds_count") > before["appends"]
    assert value("agentsite_runs_active") == 0
    await communicator.disconnect()
    assert value("agentsite_sockets_open") == before["sockets"]


def test_metrics_answer_this_machine_and_a_bearer_of_the_token_only(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    response = client.get("/metrics")  # the test client comes from 127.0.0.1
    assert response.status_code == 200 and b"agentsite_turns_started_total" in response.content
    assert response["Content-Type"].startswith("text/plain")

    elsewhere = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **elsewhere).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **elsewhere).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", **elsewhere).status_code == 200
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ", **elsewhere).status_code == 403
