"""Retention: every hourly backup for 48 hours, every three-hourly one for 14 days, the
first of each day for 90 days, and always the newest of each kind."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from backups import storage
from backups.models import BackupFile, BackupKind
from backups.services import retention_apply

CPH = ZoneInfo("Europe/Copenhagen")
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=CPH)


def backup(kind: str, when: str) -> BackupFile:
    created = datetime.fromisoformat(when).replace(tzinfo=CPH)
    name = f"heyloyalty-{kind}-{created:%Y%m%dT%H%M}.hlbk"
    storage.local_path(name).write_bytes(b"x")
    return BackupFile.objects.create(
        name=name, kind=kind, created_at=created, size=1, sha256="0" * 64, key_id="b1",
        manifest={},
    )  # fmt: skip


@pytest.mark.django_db
def test_retention_keeps_what_the_policy_says_and_deletes_the_rest():
    hourly, three = BackupKind.HOURLY, BackupKind.THREE_HOURLY
    kept = [
        backup(hourly, "2026-06-10T11:05"),  # an hour old
        backup(hourly, "2026-06-08T13:05"),  # 47 hours
        backup(hourly, "2026-06-07T00:05"),  # older, but the first of its day
        backup(three, "2026-05-30T03:35"),  # 11 days
        backup(three, "2026-05-25T00:35"),  # 16 days, the first of its day
        backup(three, "2026-03-14T00:35"),  # 88 days, the first of its day
    ]
    gone = [
        backup(hourly, "2026-06-07T01:05"),  # 3 days, not the first of its day
        backup(hourly, "2026-03-01T00:05"),  # over 90 days
        backup(three, "2026-05-25T03:35"),  # 16 days, not the first of its day
    ]

    removed = retention_apply(now=NOW)

    assert sorted(removed) == sorted(f.name for f in gone)
    for item in gone:
        item.refresh_from_db()
        assert item.deleted_at == NOW
        assert not storage.local_path(item.name).exists()
    for item in kept:
        item.refresh_from_db()
        assert item.deleted_at is None
        assert storage.local_path(item.name).exists()
    assert retention_apply(now=NOW) == []  # nothing left to do


@pytest.mark.django_db
def test_the_newest_backup_of_a_kind_is_kept_however_old(settings):
    settings.BACKUP_KEEP_DAILY_DAYS = 1
    last = backup(BackupKind.HOURLY, "2026-01-01T10:05")
    older = backup(BackupKind.HOURLY, "2026-01-01T09:05")

    assert retention_apply(now=NOW) == [older.name]
    last.refresh_from_db()
    assert last.deleted_at is None
