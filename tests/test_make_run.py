"""`make run` (``python -m heyloyalty.dev run``) for real: it starts the watchdog with the
web, worker and beat processes, and Ctrl-C stops every one of them.

Its own scratch database on the suite's PostgreSQL server and its own redis-server on a
free port (tests/monitoring/stack.py), so a worker of this run takes no task of another;
the mail sink is make run's own, on a free port (EMBEDDED_SMTP_PORT).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg2
import pytest

from tests.monitoring.stack import RedisServer, free_port, wait_for

pytestmark = pytest.mark.timeout(300)

BASE = Path(__file__).resolve().parent.parent


@pytest.fixture
def scratch_database_url() -> Iterator[str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    name = f"make_run_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    password = db.get("PASSWORD") or ""
    admin = psycopg2.connect(
        dbname="postgres", host=db["HOST"], port=db["PORT"], user=db["USER"], password=password
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{db['USER']}:{password}@{db['HOST']}:{db['PORT']}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def work() -> Iterator[Path]:
    # Not under pytest's basetemp: that is shared by every pytest run of this user.
    path = Path(tempfile.mkdtemp(prefix="heyloyalty-make-run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def status(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if (doc.get("watchdog") or {}).get("at") else None


def test_make_run_runs_the_watchdog_and_ctrl_c_stops_it(scratch_database_url, work):
    redis = RedisServer(work)
    redis.start()
    status_file = work / "monitor" / "status.json"
    skip = ("MONITOR_", "CELERY_", "EMBEDDED_", "SMTP_URL", "ALERT_", "PUBLIC_URL", "BIND")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(
        PYTHONUNBUFFERED="1",
        DATABASE_URL=scratch_database_url,
        REDIS_URL=redis.url,
        PORT=str(free_port()),
        EMBEDDED_SMTP_PORT=str(free_port()),  # not the settings' 1025: make run passes it on
        MONITOR_STATUS_FILE=str(status_file),
    )
    log = work / "make-run.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "heyloyalty.dev", "run"], cwd=BASE, env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    processes: list[psutil.Process] = []
    try:
        doc = wait_for(lambda: status(status_file), "the watchdog's status file", timeout=240)
        processes = psutil.Process(runner.pid).children(recursive=True)
        watchdogs = [p for p in processes if p.cmdline()[-2:] == ["manage.py", "watchdog"]]
        assert len(watchdogs) == 1, [p.cmdline() for p in processes]

        # It started once the rest was up: its first pass found nothing to open an incident for.
        checks = {c["name"]: c["status"] for c in doc["watchdog"]["checks"]}
        assert checks["worker"] == checks["beat"] == checks["relay"] == "ok", checks
        assert doc["watchdog"]["state"]["incident"] is None
        assert doc["incidents"] == []

        # Ctrl-C in the terminal: SIGINT to make run's process group.
        os.killpg(runner.pid, signal.SIGINT)
        assert runner.wait(timeout=60) == 130  # honcho's exit status after SIGINT
        _, alive = psutil.wait_procs(processes, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
        assert not watchdogs[0].is_running()
    except BaseException:
        print(log.read_text(errors="replace")[-6000:])
        raise
    finally:
        for process in processes:
            if process.is_running():
                process.kill()
        if runner.poll() is None:
            runner.kill()
        runner.wait(timeout=30)
        time.sleep(0.5)  # let the server see the last connections close
        redis.stop()
