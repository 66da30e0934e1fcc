"""Celery: configuration, the beat schedule, and a real worker process running a task."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from heyloyalty.celery import app
from heyloyalty.schedule import BEAT_SCHEDULE
from tests.conftest import LiveWorker

BASE = Path(__file__).resolve().parent.parent


def test_celery_speaks_json_only_and_bounds_run_time():
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_time_limit > app.conf.task_soft_time_limit > 0
    assert app.conf.broker_url == settings.REDIS_URL


def test_every_beat_job_names_a_registered_task():
    app.loader.import_default_modules()
    assert BEAT_SCHEDULE
    for name, entry in BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
    assert app.conf.beat_schedule == BEAT_SCHEDULE


def test_retry_delays_stay_below_the_visibility_timeout():
    assert app.conf.broker_transport_options["visibility_timeout"] > app.conf.task_time_limit


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_scheduled_task(live_worker: LiveWorker):
    from accounts.tasks import clear_expired_sessions

    Session.objects.create(
        session_key="expired" + "x" * 25,
        session_data="e30=",
        expire_date=timezone.now() - timedelta(days=1),
    )
    start = live_worker.position()
    live_worker.send(clear_expired_sessions)
    deadline = time.monotonic() + 60
    while Session.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    output = live_worker.output(since=start)
    assert not Session.objects.exists(), f"the worker did not run the task:\n{output}"
    assert "Traceback" not in output, output


def test_importing_the_project_does_not_load_the_settings():
    """`make run` imports the package to write .env before any setting can be read."""
    code = (
        "import django.conf, heyloyalty, heyloyalty.celery; print(django.conf.settings.configured)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
