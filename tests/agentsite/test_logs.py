"""LOG_FORMAT=json: one JSON object per line, with the request, session, run and user ids
of the work that logged it; the default stays readable text."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.test import Client

from agentsite import logs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_ids_left_over():
    """A request's ids stay bound on its thread until the next request (Django logs a failed
    request after the middleware returned); the test thread serves many."""
    logs.bind(request_id=None, session_id=None, run_id=None, user_id=None)
    yield
    logs.bind(request_id=None, session_id=None, run_id=None, user_id=None)


@pytest.fixture
def lines():
    """What the root logger writes through a JSON handler, as parsed lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.IdsFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_a_line_is_one_json_object_with_the_bound_ids_and_the_exception(lines):
    with logs.bound(request_id="r1", session_id="s1", run_id="u1", user_id=7):
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("chat.test").exception("it failed: %s", "badly", extra={"step": 3})
    logging.getLogger("chat.test").warning("after")

    first, after = lines()
    assert first["message"] == "it failed: badly" and first["level"] == "ERROR" and first["logger"] == "chat.test"
    assert (first["request_id"], first["session_id"], first["run_id"], first["user_id"]) == ("r1", "s1", "u1", "7")
    assert "ValueError: boom" in first["exception"] and first["step"] == 3
    assert "request_id" not in after  # the ids were for the block only


@pytest.mark.django_db
def test_a_request_is_logged_with_its_id_and_user_and_answers_with_the_id(lines, owner):
    client = Client()
    client.force_login(owner)
    response = client.get(f"/api/v1/chats/{uuid.uuid4()}/", HTTP_X_REQUEST_ID="req-42")

    assert response.status_code == 404 and response["X-Request-ID"] == "req-42"
    [line] = [line for line in lines() if line["logger"] == "django.request"]
    assert (line["request_id"], line["user_id"]) == ("req-42", str(owner.pk))
    assert len(Client().get("/healthz")["X-Request-ID"]) == 32  # none given: one is made


@pytest.mark.django_db(transaction=True)
async def test_a_runs_lines_carry_its_run_session_and_user(lines, owner, runtime):
    from chat.runs import turns
    from tests.fakes.scripted import ScriptedProvider, Turn

    runtime.runs.provider = ScriptedProvider(Turn(steps=[RuntimeError("model went wrong")], content=[]))
    sid = uuid.uuid4()
    turn = await runtime.runs.start_turn(owner, sid, turns.SendMessage("hi"))
    run = runtime.runs._runs.get(sid)
    if run is not None:
        await run.task

    [line] = [line for line in lines() if line["logger"] == "chat.agent.loop"]
    assert (line["run_id"], line["session_id"], line["user_id"]) == (str(turn.run_id), str(sid), str(owner.pk))
    assert "model went wrong" in line["exception"]


def settings_in_a_fresh_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    read = "from agentsite import settings as s; print(s.LOGGING['handlers']['console']['formatter'])"
    clean = {k: v for k, v in __import__("os").environ.items() if k != "LOG_FORMAT"}
    return subprocess.run([sys.executable, "-c", read], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(("env", "formatter"), [({}, "plain"), ({"LOG_FORMAT": "json"}, "json")])
def test_text_is_the_default_and_json_is_asked_for(env, formatter):
    result = settings_in_a_fresh_process(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == formatter


def test_an_unknown_log_format_stops_start_up():
    result = settings_in_a_fresh_process({"LOG_FORMAT": "xml"})
    assert result.returncode != 0 and "LOG_FORMAT must be text or json" in result.stderr
