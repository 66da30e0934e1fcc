"""The watchdog: one alert when an incident opens, a reminder at a set interval, one on
recovery; the incident in the database and in the status store the banner reads."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from monitoring import services, status
from monitoring.models import Incident, IncidentKind, IncidentSource
from monitoring.watchdog import run_pass
from tests.monitoring.conftest import ALERTS, processes_alive

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alerts(mailoutbox) -> list[str]:
    return [m.subject for m in mailoutbox if m.subject.startswith("[Heyloyalty alert]")]


def test_a_failure_opens_one_incident_and_alerts_once(mailoutbox, technician, webhook, settings):
    settings.MONITOR_WEBHOOK_URL = webhook.url
    from monitoring import heartbeats

    heartbeats.beat_beat()  # beat lives; no worker does

    first = run_pass()
    for _ in range(3):
        run_pass()

    assert first.opened
    incident = Incident.objects.get()
    assert incident.source == IncidentSource.WATCHDOG
    assert incident.components == ["worker"]
    assert incident.kind == IncidentKind.DEGRADED
    assert incident.resolved_at is None and incident.alerted_at is not None
    assert alerts(mailoutbox) == ["[Heyloyalty alert] PROBLEM: worker"]
    assert sorted(mailoutbox[0].to) == [ALERTS, "root@heyloyalty.test"]
    assert [p["event"] for p in webhook.payloads()] == ["problem"]


def test_the_alert_says_what_failed_and_where_to_look(mailoutbox, settings):
    settings.PUBLIC_URL = "https://mail.example.com"
    settings.REDIS_URL = f"redis://:hunter2-secret@127.0.0.1:{closed_port()}/0"

    run_pass()

    (mail,) = mailoutbox
    assert mail.subject == "[Heyloyalty alert] PROBLEM: redis"
    text = mail.body
    assert "FAIL redis     connection refused" in text
    assert "unknown" not in text.split("Checks at")[0]
    assert "https://mail.example.com/readyz" in text
    assert "https://mail.example.com/admin/monitoring/incident/" in text
    assert "hunter2" not in text


def test_a_reminder_goes_out_at_the_set_interval_while_it_lasts(mailoutbox, settings, time_machine):
    settings.MONITOR_REMINDER_MINUTES = 60
    time_machine.move_to(timezone.now(), tick=False)

    run_pass()  # nothing lives: worker and beat fail
    time_machine.shift(timedelta(minutes=59))
    run_pass()
    assert alerts(mailoutbox) == ["[Heyloyalty alert] PROBLEM: worker, beat"]

    time_machine.shift(timedelta(minutes=2))
    run_pass()
    run_pass()
    # An hour without a worker: the beat jobs are late by now too.
    assert alerts(mailoutbox)[1:] == ["[Heyloyalty alert] STILL FAILING: worker, beat, jobs"]
    assert Incident.objects.get().reminded_at is not None


def test_recovery_closes_the_incident_and_says_so_once(mailoutbox, webhook, settings, time_machine):
    settings.MONITOR_WEBHOOK_URL = webhook.url
    settings.MONITOR_RECOVERY_SECONDS = 10
    time_machine.move_to(timezone.now(), tick=False)
    run_pass()

    processes_alive()
    run_pass()  # green, but not for long enough yet
    assert Incident.objects.get().resolved_at is None

    time_machine.shift(11)
    processes_alive()
    closing = run_pass()
    run_pass()

    assert closing.closed is not None
    incident = Incident.objects.get()
    assert incident.resolved_at == timezone.now()
    assert incident.recovery_alerted_at is not None
    assert alerts(mailoutbox) == [
        "[Heyloyalty alert] PROBLEM: worker, beat",
        "[Heyloyalty alert] RECOVERED: worker, beat",
    ]
    assert "Resolved:" in mailoutbox[1].body
    assert [p["event"] for p in webhook.payloads()] == ["problem", "recovery"]
    assert webhook.payloads()[1]["incident"]["key"] == incident.key


def test_what_fails_later_joins_the_open_incident_without_a_new_alert(mailoutbox, settings):
    from monitoring import heartbeats

    heartbeats.beat_beat()
    run_pass()  # the worker

    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    run_pass()  # and now Redis

    incident = Incident.objects.get()
    assert incident.components == ["worker", "redis"]
    assert incident.kind == IncidentKind.OUTAGE
    assert incident.title == "Failing: worker, redis"
    assert len(alerts(mailoutbox)) == 1


def test_a_relay_that_refuses_the_alert_is_tried_again(webhook, settings, smtp_server):
    settings.MONITOR_WEBHOOK_URL = webhook.url
    settings.ALERT_SMTP_URL = f"smtp://127.0.0.1:{closed_port()}"

    result = run_pass()
    assert result.sent == ["problem:webhook"]
    assert not smtp_server.messages

    settings.ALERT_SMTP_URL = f"smtp://127.0.0.1:{smtp_server.port}"
    again = run_pass()
    run_pass()

    assert again.sent == ["problem:email"]
    subjects = [m["Subject"] for _to, m in smtp_server.messages]
    assert subjects == ["[Heyloyalty alert] PROBLEM: worker, beat"]
    assert len(webhook.posts) == 1


def test_the_webhook_is_signed_when_a_secret_is_set(webhook, settings):
    settings.MONITOR_WEBHOOK_URL = webhook.url
    settings.MONITOR_WEBHOOK_SECRET = "shared-secret"

    run_pass()

    ((headers, body),) = webhook.posts
    expected = hmac.new(b"shared-secret", body, hashlib.sha256).hexdigest()
    assert headers["x-heyloyalty-signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["event"] == "problem"
    assert {c["name"] for c in payload["checks"]} >= {"database", "redis", "worker", "beat"}


def test_the_banner_shows_while_the_incident_is_open(personas, settings):
    client = Client()
    client.force_login(personas.alice)
    assert "We are working on a problem" not in client.get("/").text

    run_pass()
    page = client.get("/").text
    assert "We are working on a problem" in page
    assert "Sending and other background work are delayed" in page

    processes_alive()
    run_pass()
    assert "We are working on a problem" not in client.get("/").text


def test_the_status_store_holds_the_incident_in_the_file_and_in_redis():
    run_pass()

    incident = Incident.objects.get()
    from_file, from_redis = status.read_file(), status.read_redis()
    assert from_file is not None
    assert from_file == from_redis
    assert [i["key"] for i in from_file["incidents"]] == [incident.key]
    assert from_file["watchdog"]["state"]["incident"]["key"] == incident.key


def test_a_lost_status_store_does_not_open_a_second_incident(mailoutbox, settings):
    run_pass()
    settings.MONITOR_STATUS_FILE.unlink()
    from monitoring.heartbeats import monitor_redis

    monitor_redis().delete(f"{settings.MONITOR_KEY_PREFIX}:status")

    run_pass()

    assert Incident.objects.count() == 1
    assert len(alerts(mailoutbox)) == 1


def test_an_incident_a_main_admin_resolved_while_it_still_fails_opens_again(mailoutbox, personas):
    run_pass()
    services.incident_resolve(incident=Incident.objects.get(), by=personas.root)

    run_pass()
    run_pass()

    assert Incident.objects.filter(resolved_at__isnull=True).count() == 1
    assert Incident.objects.count() == 2
    assert len(alerts(mailoutbox)) == 2


def test_nothing_failing_is_no_incident_and_no_alert(mailoutbox):
    processes_alive()

    result = run_pass()

    assert not result.opened
    assert not Incident.objects.exists()
    assert not alerts(mailoutbox)
    assert (status.read_file() or {})["incidents"] == []


def test_the_command_prints_one_json_object(capsys):
    processes_alive()

    call_command("watchdog", "--once", "--json")

    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok"
    assert {c["name"] for c in result["checks"]} == {
        "database", "redis", "worker", "beat", "relay", "jobs", "backup",
    }  # fmt: skip
    assert result["incident"] is None


def test_the_command_runs_passes_for_a_while(capsys):
    call_command("watchdog", "--for", "0.3", "--interval", "0.1")

    lines = capsys.readouterr().out.strip().splitlines()
    assert 2 <= len(lines) <= 4
    assert "FAIL worker, beat (incident opened; sent problem:email)" in lines[0]
    assert lines[1].endswith("FAIL worker, beat")
