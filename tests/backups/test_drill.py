"""Restore drills: a backup is proven by restoring it into a scratch database and
comparing row counts and checksums with its manifest; a corrupted one is an alert."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from backups import container, db, tasks
from backups.models import BackupFile, RestoreRun, RunStatus
from backups.services import backup_verify
from tests.backups.conftest import ALERTS, fill, make_backups, path_of

pytestmark = pytest.mark.django_db(transaction=True)


def scratch_databases() -> set[str]:
    connection = db.connect(db.server_params(db.params_for_alias()))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'heyloyalty_drill_%'"
            )
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


def test_a_drill_restores_each_newest_backup_and_finds_it_matches(live_personas, capsys):
    fill(live_personas.account_a, label="a")
    files = make_backups()
    before = scratch_databases()

    call_command("backup_verify", "--json")

    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True
    assert {d["file"] for d in result["drills"]} == {f.name for f in files.values()}
    for drill in result["drills"]:
        assert drill["tables"] and all(t["ok"] for t in drill["tables"])
    hourly = next(d for d in result["drills"] if "hourly-" in d["file"])
    members = next(t for t in hourly["tables"] if t["name"] == "members_member")
    assert members["rows"] == members["expected_rows"] == 12
    assert set(BackupFile.objects.values_list("verified_ok", flat=True)) == {True}
    assert scratch_databases() == before  # dropped again


def test_a_drill_detects_a_corrupted_backup_and_alerts_the_technicians(live_personas, mailoutbox):
    Group.objects.get_or_create(name="Technicians")[0].user_set.add(live_personas.root)
    fill(live_personas.account_a, label="a")
    item = make_backups()["hourly"]
    path = path_of(item)
    data = bytearray(path.read_bytes())
    data[container.read_header(path)[2] + 40] ^= 0xFF  # inside the data
    path.write_bytes(bytes(data))

    run = backup_verify(item=item)

    assert run.status == RunStatus.FAILED
    assert "corrupted" in run.error
    item.refresh_from_db()
    assert item.verified_ok is False
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == sorted([ALERTS, live_personas.root.email])
    assert "Restore drill failed" in mailoutbox[0].subject
    assert item.name in mailoutbox[0].body
    assert run.alerted_at is not None


def test_the_daily_drill_task_checks_the_newest_backups(live_personas, mailoutbox):
    fill(live_personas.account_a, label="a")
    make_backups()

    tasks.drill.apply()

    runs = RestoreRun.objects.filter(kind="drill")
    assert runs.count() == 2
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    assert not mailoutbox


def test_a_file_swapped_for_another_under_its_name_fails_the_drill(live_personas, mailoutbox):
    fill(live_personas.account_a, label="a")
    files = make_backups()
    path_of(files["hourly"]).write_bytes(path_of(files["three_hourly"]).read_bytes())

    run = backup_verify(item=files["hourly"])

    assert run.status == RunStatus.FAILED
    assert "does not match the backup recorded" in run.error
    assert len(mailoutbox) == 1


def test_backup_verify_exits_non_zero_on_a_bad_file(live_personas, tmp_path):
    bad = tmp_path / "x.hlbk"
    bad.write_bytes(b"not a backup at all")

    with pytest.raises(CommandError, match="not a Heyloyalty backup file"):
        call_command("backup_verify", str(bad))


def test_backup_verify_without_any_backup_says_so():
    with pytest.raises(CommandError, match="no backup to verify"):
        call_command("backup_verify")
