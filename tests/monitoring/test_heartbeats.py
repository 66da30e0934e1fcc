"""Heartbeats: every beat job has one, a real worker records it, a job that misses its
period plus grace is late; workers and beat show they live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import signals
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.utils import timezone

from heyloyalty.celery import app
from heyloyalty.schedule import BEAT_SCHEDULE
from monitoring import heartbeats
from monitoring.heartbeats import JobSpec, period_of
from monitoring.models import Heartbeat
from tests.conftest import LiveWorker

BASE = Path(__file__).resolve().parent.parent.parent


def test_every_beat_job_has_a_heartbeat_with_a_period_and_grace():
    specs = heartbeats.job_specs()

    assert set(specs) == set(BEAT_SCHEDULE)
    for name, spec in specs.items():
        assert spec.task == BEAT_SCHEDULE[name]["task"]
        assert spec.period > timedelta(0), name
        assert spec.grace >= timedelta(seconds=django_settings.MONITOR_JOB_GRACE_SECONDS), name


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(BEAT_SCHEDULE))
def test_a_beat_job_that_succeeds_records_its_heartbeat(name: str):
    app.loader.import_default_modules()
    task = app.tasks[BEAT_SCHEDULE[name]["task"]]

    signals.task_success.send(sender=task, result=None)

    beat = Heartbeat.objects.get(name=name)
    assert beat.last_seen_at is not None
    assert timezone.now() - beat.last_seen_at < timedelta(seconds=5)


@pytest.mark.django_db
def test_a_task_that_is_no_beat_job_records_nothing():
    app.loader.import_default_modules()
    signals.task_success.send(sender=app.tasks["accounts.tasks.send_access_request"], result=None)

    assert not Heartbeat.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_records_the_heartbeat_of_the_job_it_ran(live_worker: LiveWorker):
    from accounts.tasks import clear_expired_sessions

    live_worker.send(clear_expired_sessions)

    deadline = time.monotonic() + 60
    while not Heartbeat.objects.filter(name="accounts.clear_expired_sessions").exists():
        assert time.monotonic() < deadline, live_worker.output()
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_writes_its_heartbeat_to_redis(live_worker: LiveWorker):
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    name = f"{live_worker.queue}@"

    deadline = time.monotonic() + 60
    while True:
        members: list[bytes] = client.zrangebyscore(  # type: ignore[assignment]
            "hl:monitor:workers", time.time() - 30, "+inf"
        )
        if any(m.decode().startswith(name) for m in members):
            break
        assert time.monotonic() < deadline, live_worker.output()
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("schedule", "period"),
    [
        (timedelta(seconds=5), timedelta(seconds=5)),
        (crontab(minute=5), timedelta(hours=1)),
        (crontab(minute=35, hour="*/3"), timedelta(hours=3)),
        (crontab(minute=10, hour=0), timedelta(days=1)),
        (crontab(minute=0, hour=9, day_of_week="mon"), timedelta(days=7)),
        (crontab(minute="0,15", hour=6), timedelta(hours=23, minutes=45)),
    ],
)
def test_the_period_is_the_longest_gap_between_two_runs(schedule, period):
    assert period_of(schedule) == period


def test_a_schedule_without_a_period_is_refused():
    with pytest.raises(TypeError):
        period_of("every so often")


@pytest.mark.django_db
def test_a_job_is_late_after_its_period_plus_grace(settings, time_machine):
    settings.MONITOR_JOB_GRACE_SECONDS = 60
    spec = JobSpec(name="backups.hourly", task="t", period=timedelta(hours=1))
    assert spec.grace == timedelta(minutes=31)  # 60 s plus half the period
    time_machine.move_to(timezone.now(), tick=False)
    ran = timezone.now()

    time_machine.shift(timedelta(hours=1, minutes=31) - timedelta(seconds=1))
    assert not heartbeats.job_late(spec, ran, ran)
    time_machine.shift(timedelta(seconds=2))
    assert heartbeats.job_late(spec, ran, ran)


@pytest.mark.django_db
def test_a_job_never_seen_is_late_counted_from_when_it_was_first_expected(time_machine):
    spec = heartbeats.job_specs()["campaigns.reap"]
    time_machine.move_to(timezone.now(), tick=False)
    since = timezone.now()

    time_machine.shift(spec.late_after - timedelta(seconds=1))
    assert not heartbeats.job_late(spec, None, since)
    time_machine.shift(timedelta(seconds=2))
    assert heartbeats.job_late(spec, None, since)


def test_the_default_thresholds_turn_readyz_red_and_alert_within_30_seconds():
    """With no MONITOR_* variable set: a worker or beat that dies right after its last
    heartbeat is stale after MONITOR_STALE_SECONDS (/readyz red), and the watchdog's next
    pass (every MONITOR_WATCHDOG_SECONDS, each check bounded by the timeout) alerts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in dir(s) if k.startswith('MONITOR_') "
        "and k.endswith('SECONDS')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE,
        env={**env, "DJANGO_SETTINGS_MODULE": "heyloyalty.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    defaults = json.loads(result.stdout)

    red_after = defaults["MONITOR_STALE_SECONDS"]
    alerted_after = red_after + defaults["MONITOR_WATCHDOG_SECONDS"]
    assert defaults["MONITOR_HEARTBEAT_SECONDS"] * 2 <= red_after  # one late beat is no alarm
    assert red_after <= 30
    assert alerted_after + defaults["MONITOR_CHECK_TIMEOUT_SECONDS"] <= 30
