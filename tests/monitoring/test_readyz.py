"""/healthz answers while the process lives; /readyz names each dependency and answers 503
while one that matters fails."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from backups.models import BackupFile
from monitoring import heartbeats
from monitoring.models import Heartbeat
from tests.monitoring.conftest import processes_alive

pytestmark = pytest.mark.django_db

CHECKS = {"database", "redis", "worker", "beat", "relay", "jobs", "backup"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def readyz(client: Client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    return response.status_code, response.json()


def test_healthz_answers_without_touching_anything(client: Client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_green_when_everything_answers(client: Client, smtp_server):
    processes_alive()
    BackupFile.objects.create(
        name="b.hlbk", kind="hourly", created_at=timezone.now() - timedelta(minutes=20),
        size=1, sha256="0" * 64, key_id="b1", manifest={},
    )  # fmt: skip

    status, body = readyz(client)

    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
    assert {name: c["status"] for name, c in body["checks"].items()} == dict.fromkeys(CHECKS, "ok")
    assert body["checks"]["worker"]["detail"] == "1 live"
    assert body["checks"]["database"]["critical"] is True
    assert body["checks"]["backup"]["critical"] is False


def test_no_worker_heartbeat_turns_readyz_red(client: Client):
    heartbeats.beat_beat()

    status, body = readyz(client)

    assert status == 503
    assert body["status"] == "fail"
    assert body["checks"]["worker"]["status"] == "fail"
    assert "no worker heartbeat" in body["checks"]["worker"]["detail"]
    assert body["checks"]["beat"]["status"] == "ok"


def test_a_stale_worker_heartbeat_is_a_dead_worker(client: Client, settings, time_machine):
    settings.MONITOR_STALE_SECONDS = 20
    time_machine.move_to(timezone.now(), tick=False)
    processes_alive()

    time_machine.shift(19)
    heartbeats.beat_beat()
    assert readyz(client)[0] == 200

    time_machine.shift(2)  # 21 s since the worker's last heartbeat
    heartbeats.beat_beat()
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["worker"]["status"] == "fail"


def test_a_stopped_beat_turns_readyz_red(client: Client, settings, time_machine):
    settings.MONITOR_STALE_SECONDS = 20
    time_machine.move_to(timezone.now(), tick=False)
    processes_alive()
    time_machine.shift(25)
    heartbeats.beat_worker("worker@test")

    status, body = readyz(client)

    assert status == 503
    assert body["checks"]["beat"] == {
        "status": "fail",
        "detail": "last heartbeat 25 s ago",
        "critical": True,
        "ms": body["checks"]["beat"]["ms"],
    }


def test_a_relay_that_does_not_answer_turns_readyz_red(client: Client, smtp_server, settings):
    processes_alive()
    settings.EMAIL_PORT = closed_port()

    status, body = readyz(client)

    assert status == 503
    assert body["checks"]["relay"]["status"] == "fail"
    assert body["checks"]["relay"]["detail"] == "connection refused"


def test_redis_away_turns_readyz_red_and_the_heartbeats_unknown(client: Client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    started = time.monotonic()
    status, body = readyz(client)

    assert time.monotonic() - started < 5
    assert status == 503
    assert body["checks"]["redis"]["status"] == "fail"
    assert body["checks"]["worker"]["status"] == "unknown"
    assert body["checks"]["beat"]["status"] == "unknown"
    assert body["checks"]["database"]["status"] == "ok"


def test_a_late_beat_job_is_reported_but_does_not_make_readyz_red(client: Client):
    processes_alive()
    Heartbeat.objects.create(
        name="backups.hourly",
        last_seen_at=timezone.now() - timedelta(hours=3),
        watching_since=timezone.now() - timedelta(days=1),
    )

    status, body = readyz(client)

    assert status == 200
    assert body["checks"]["jobs"]["status"] == "fail"
    assert "backups.hourly (last run 3 h ago)" in body["checks"]["jobs"]["detail"]


def test_an_old_backup_is_a_warning(client: Client):
    processes_alive()
    BackupFile.objects.create(
        name="old.hlbk", kind="hourly", created_at=timezone.now() - timedelta(hours=5),
        size=1, sha256="0" * 64, key_id="b1", manifest={},
    )  # fmt: skip

    status, body = readyz(client)

    assert status == 200
    assert body["checks"]["backup"] == {
        "status": "warn",
        "detail": "newest 5 h old",
        "critical": False,
        "ms": body["checks"]["backup"]["ms"],
    }


def test_readyz_reveals_no_host_or_password(client: Client, settings):
    settings.REDIS_URL = f"redis://:s3cret-pass@127.0.0.1:{closed_port()}/0"

    text = client.get("/readyz").content.decode()

    assert "s3cret" not in text
    assert "127.0.0.1" not in text


def test_readyz_refuses_writes(client: Client):
    assert client.post("/readyz").status_code == 405
