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
from django.db import connection
from django.utils import timezone

from heyloyalty.celery import app
from heyloyalty.schedule import BEAT_SCHEDULE

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
def test_a_real_worker_runs_a_scheduled_task():
    Session.objects.create(
        session_key="expired" + "x" * 25,
        session_data="e30=",
        expire_date=timezone.now() - timedelta(days=1),
    )
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "heyloyalty",
            "worker",
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
            "--queues",
            f"test-{os.getpid()}",
        ],
        cwd=BASE,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        from accounts.tasks import clear_expired_sessions

        clear_expired_sessions.apply_async(queue=f"test-{os.getpid()}")
        deadline = time.monotonic() + 60
        while Session.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not Session.objects.exists(), "the worker did not run the task"
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert "Traceback" not in output, output
