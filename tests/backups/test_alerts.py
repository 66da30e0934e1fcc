"""Backup alerts go through the monitoring app's channel: mail to ALERT_EMAILS and the
Technicians (through ALERT_SMTP_URL when set) and a POST to MONITOR_WEBHOOK_URL when set,
with a real SMTP server and a real HTTP server. A relay or a webhook that is down costs
the alert (the run's alerted_at stays empty), never the backup."""

from __future__ import annotations

import hashlib
import hmac
import socket
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from backups import alerts, tasks
from backups.models import BackupKind, BackupRun, RunStatus
from tests.backups.conftest import ALERTS
from tests.monitoring.conftest import WebhookReceiver, webhook_server

pytestmark = pytest.mark.django_db

SUBJECT = "[Heyloyalty alert] Hourly backup missed"


@pytest.fixture
def hook(settings):
    with webhook_server() as receiver:
        settings.MONITOR_WEBHOOK_URL = receiver.url
        yield receiver


def closed_port() -> int:
    """A local port nobody listens on: a relay that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hourly_missed() -> None:
    """The last hourly backup is two hours old (missed); the three-hourly one is on time."""
    at = timezone.now() - timedelta(hours=2)
    for kind in (BackupKind.HOURLY, BackupKind.THREE_HOURLY):
        BackupRun.objects.create(
            kind=kind, status=RunStatus.SUCCEEDED, started_at=at, finished_at=at
        )


def missed_run() -> BackupRun:
    return BackupRun.objects.get(status=RunStatus.MISSED, kind=BackupKind.HOURLY)


def test_a_backup_alert_reaches_the_monitoring_webhook_signed(
    settings, mailoutbox, hook: WebhookReceiver
):
    settings.MONITOR_WEBHOOK_SECRET = "backup-hook-secret"
    hourly_missed()

    tasks.check.apply()

    assert [(m.subject, m.to) for m in mailoutbox] == [(SUBJECT, [ALERTS])]
    hook.wait_for(1)
    assert len(hook.posts) == 1
    headers, body = hook.posts[0]
    payload = hook.payloads()[0]
    assert payload["event"] == "backup"
    assert payload["subject"] == SUBJECT
    assert payload["incident"] is None and payload["checks"] == []
    assert payload["text"] == mailoutbox[0].body
    assert "No hourly backup has succeeded since" in payload["text"]
    assert f"{settings.PUBLIC_URL}/admin/backups/" in payload["text"]
    digest = hmac.new(b"backup-hook-secret", body, hashlib.sha256).hexdigest()
    assert headers["x-heyloyalty-signature"] == f"sha256={digest}"
    assert headers["content-type"] == "application/json"
    assert missed_run().alerted_at is not None


def test_the_webhook_alone_is_someone_told(settings, mailoutbox, hook: WebhookReceiver):
    settings.ALERT_EMAILS = []  # and no Technicians: nobody to mail
    hourly_missed()

    tasks.check.apply()

    assert not mailoutbox
    assert [p["subject"] for p in hook.payloads()] == [SUBJECT]
    assert missed_run().alerted_at is not None


def test_nobody_to_tell_is_not_alerted(settings, mailoutbox):
    settings.ALERT_EMAILS = []
    settings.MONITOR_WEBHOOK_URL = "ftp://hooks.example/alerts"  # not http(s): unusable

    assert alerts.alert(subject="Hourly backup missed", text="late") is False
    assert not mailoutbox


def test_mail_goes_through_the_alert_relay_when_the_campaign_relay_is_down(
    settings, smtp_server, personas
):
    Group.objects.get_or_create(name="Technicians")[0].user_set.add(personas.root)
    settings.EMAIL_PORT = closed_port()  # the campaign relay (SMTP_URL) is down
    settings.ALERT_SMTP_URL = f"smtp://127.0.0.1:{smtp_server.port}"
    hourly_missed()

    tasks.check.apply()

    [(recipients, message)] = smtp_server.messages
    assert sorted(recipients) == sorted([ALERTS, personas.root.email])
    assert message["Subject"] == SUBJECT
    assert missed_run().alerted_at is not None


def test_a_relay_and_a_webhook_that_are_down_cost_the_alert_not_the_backup(
    settings, mailoutbox, hook: WebhookReceiver
):
    settings.ALERT_SMTP_URL = f"smtp://127.0.0.1:{closed_port()}"
    hook.answer = 503
    hourly_missed()

    result = tasks.check.apply()

    assert result.successful()
    hook.wait_for(1)
    run = missed_run()  # recorded, with what an operator needs
    assert "No hourly backup has succeeded since" in run.error
    assert run.alerted_at is None  # nobody was told: said so in the admin panel


def test_a_relay_that_is_down_still_leaves_the_webhook(settings, hook: WebhookReceiver):
    settings.ALERT_SMTP_URL = f"smtp://127.0.0.1:{closed_port()}"

    assert alerts.alert(subject="Backup retention could not delete a file", text="x") is True
    assert hook.payloads()[0]["subject"] == (
        "[Heyloyalty alert] Backup retention could not delete a file"
    )
