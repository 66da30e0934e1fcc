"""A missed backup, a failed one, an overdue drill: an alert for technicians, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import tasks
from backups.models import BackupKind, BackupRun, RestoreRun, RunStatus
from tests.backups.conftest import ALERTS

pytestmark = pytest.mark.django_db


def succeeded(kind: str, ago: timedelta) -> BackupRun:
    at = timezone.now() - ago
    return BackupRun.objects.create(
        kind=kind, status=RunStatus.SUCCEEDED, started_at=at, finished_at=at
    )


def test_a_missed_hourly_backup_is_recorded_and_alerted_once(mailoutbox, time_machine):
    time_machine.move_to("2026-03-02T12:00:00+00:00", tick=False)
    succeeded(BackupKind.HOURLY, timedelta(hours=2))
    succeeded(BackupKind.THREE_HOURLY, timedelta(hours=2))

    tasks.check.apply()
    tasks.check.apply()  # a quarter later: nothing new to say

    missed = BackupRun.objects.get(status=RunStatus.MISSED)
    assert missed.kind == BackupKind.HOURLY and missed.alerted_at is not None
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [ALERTS]
    assert "Hourly backup missed" in mailoutbox[0].subject

    time_machine.move_to("2026-03-02T13:05:00+00:00", tick=False)
    tasks.check.apply()  # still nothing an hour later: said again
    assert len(mailoutbox) == 2


def test_backups_on_time_are_no_alert(mailoutbox):
    succeeded(BackupKind.HOURLY, timedelta(minutes=50))
    succeeded(BackupKind.THREE_HOURLY, timedelta(hours=3, minutes=10))

    tasks.check.apply()

    assert not BackupRun.objects.filter(status=RunStatus.MISSED).exists()
    assert not mailoutbox


def test_no_drill_for_two_days_is_an_alert(mailoutbox, time_machine):
    time_machine.move_to("2026-03-05T12:00:00+00:00", tick=False)
    from backups.models import BackupFile

    BackupFile.objects.create(
        name="x.hlbk", kind="hourly", created_at=timezone.now() - timedelta(days=3), size=1,
        sha256="0" * 64, key_id="b1", manifest={},
    )  # fmt: skip
    succeeded(BackupKind.HOURLY, timedelta(minutes=10))
    succeeded(BackupKind.THREE_HOURLY, timedelta(minutes=10))

    tasks.check.apply()
    tasks.check.apply()

    assert RestoreRun.objects.get(status=RunStatus.MISSED).kind == "drill"
    assert [m.subject for m in mailoutbox] == ["[Heyloyalty alert] Restore drill overdue"]
