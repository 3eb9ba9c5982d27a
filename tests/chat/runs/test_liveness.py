"""Which processes are alive, and so which runs: one beat per process, runs failed only when
their process fell silent, never because the database was away."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from django.db import OperationalError
from django.utils import timezone

from chat import services
from chat.models import ChatSession, Worker
from chat.runs.liveness import Liveness

pytestmark = pytest.mark.django_db(transaction=True)


def running(owner, worker_id):
    return ChatSession.objects.create(owner=owner, state="running", run_id=uuid.uuid4(), run_worker=worker_id)


def test_the_first_beat_registers_the_worker_and_later_beats_keep_it_alive():
    liveness = Liveness()
    assert liveness.beat() is True
    first = Worker.objects.get(pk=liveness.worker_id).beat_at
    liveness._up_since = time.monotonic()
    assert liveness.beat() is True
    assert Worker.objects.get(pk=liveness.worker_id).beat_at >= first


def test_a_worker_whose_row_was_removed_learns_it_was_declared_dead():
    liveness = Liveness()
    liveness.beat()
    liveness._up_since = time.monotonic()
    Worker.objects.filter(pk=liveness.worker_id).delete()  # another process's verdict
    assert liveness.beat() is False
    assert Worker.objects.filter(pk=liveness.worker_id).exists()  # and it is back, as itself


def test_no_verdicts_until_the_own_beats_lasted_the_stale_interval_nor_after_a_failed_beat(settings, monkeypatch):
    settings.RUN_STALE_AFTER = 0.2
    liveness = Liveness()
    assert liveness.stale_cutoff() is None  # never beat
    liveness._beat_safely()
    assert liveness.stale_cutoff() is None  # beat, but not for long
    time.sleep(0.25)
    assert liveness.stale_cutoff() is not None

    def down():
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(liveness, "beat", down)
    liveness._beat_safely()
    # Every process's beats were failing too: nobody's runs are judged by this one now.
    assert liveness.stale_cutoff() is None


def test_runs_of_a_silent_or_vanished_worker_fail_and_a_live_workers_do_not(owner):
    now = timezone.now()
    alive = Worker.objects.create(host="a", pid=1, beat_at=now)
    silent = Worker.objects.create(host="b", pid=2, beat_at=now - dt.timedelta(seconds=60))
    kept = running(owner, alive.pk)
    of_silent = running(owner, silent.pk)
    of_vanished = running(owner, uuid.uuid4())
    idle = ChatSession.objects.create(owner=owner)

    failed = services.fail_stale_runs(now - dt.timedelta(seconds=5))

    assert {chat.session_id for chat in failed} == {of_silent.pk, of_vanished.pk}
    states = dict(ChatSession.objects.values_list("id", "state"))
    assert states == {kept.pk: "running", of_silent.pk: "failed", of_vanished.pk: "failed", idle.pk: "idle"}
    # The silent worker's row goes: if it was only slow, its next beat tells it so.
    assert list(Worker.objects.values_list("id", flat=True)) == [alive.pk]


def test_a_run_that_ended_meanwhile_is_not_failed(owner):
    silent = Worker.objects.create(host="b", pid=2, beat_at=timezone.now() - dt.timedelta(seconds=60))
    session = running(owner, silent.pk)
    stale = services.dead_runs(timezone.now() - dt.timedelta(seconds=5))
    assert list(stale.values_list("id", flat=True)) == [session.pk]
    services.end_run(session.pk, session.run_id, "idle")  # the run ends between the read and the write
    assert services.fail_stale_runs(timezone.now() - dt.timedelta(seconds=5)) == []
    assert ChatSession.objects.get(pk=session.pk).state == "idle"
