"""Back up, wipe, restore: every row of every table in scope comes back byte for byte,
into the emptied database and into a brand-new one; a database that is not empty is
refused unless the restore says so."""

from __future__ import annotations

import uuid

import psycopg2
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from backups import db
from backups.models import RestoreRun, RunStatus
from tests.backups.conftest import fill, make_backups, path_of, snapshot, wipe

pytestmark = pytest.mark.django_db(transaction=True)


def test_back_up_wipe_restore_brings_every_row_back_byte_for_byte(live_personas):
    fill(live_personas.account_a, label="a")
    fill(live_personas.account_b, label="b", members=5)
    before = snapshot()
    assert all(before.values()), [name for name, rows in before.items() if not rows]
    files = make_backups()

    wipe()
    assert not any(snapshot().values())
    call_command("backup_restore", *[str(path_of(f)) for f in files.values()])

    assert snapshot() == before
    run = RestoreRun.objects.get(kind="restore")
    assert run.status == RunStatus.SUCCEEDED
    assert run.rows == sum(len(rows) for rows in before.values())
    event = AuditEvent.objects.filter(action="backup.restored").latest("seq")
    assert event.extra["rows"] == run.rows
    assert event.target_id == str(run.pk)


def test_a_restore_into_a_new_database_migrates_it_and_brings_every_row(live_personas):
    fill(live_personas.account_a, label="a")
    before = snapshot()
    files = make_backups()
    params = db.params_for_alias()
    with db.scratch_database(params, prefix="test_restore_target") as target:
        call_command(
            "backup_restore",
            *[str(path_of(f)) for f in files.values()],
            "--database-url",
            db.url_for(target),
        )
        other = psycopg2.connect(**target)
        try:
            with other.cursor() as cursor:
                assert snapshot(cursor=cursor) == before
        finally:
            other.close()


def test_a_database_that_is_not_empty_is_refused_and_left_as_it_was(live_personas):
    filled = fill(live_personas.account_a, label="a")
    files = make_backups()
    member = filled.members[0]
    member.email = "changed@a.test"
    member.save()
    before = snapshot()
    audited = AuditEvent.objects.filter(action="backup.restored").count()

    with pytest.raises(CommandError, match="not empty"):
        call_command("backup_restore", *[str(path_of(f)) for f in files.values()])

    assert snapshot() == before
    assert RestoreRun.objects.get().status == RunStatus.FAILED
    # The audit log outlives the test database's flush (it refuses deletes): count.
    assert AuditEvent.objects.filter(action="backup.restored").count() == audited


def test_replace_empties_the_tables_and_restores_the_backup(live_personas):
    fill(live_personas.account_a, label="a")
    before = snapshot()
    files = make_backups()
    fill(live_personas.account_b, label="later")

    call_command("backup_restore", *[str(path_of(f)) for f in files.values()], "--replace")

    assert snapshot() == before


def test_an_hourly_backup_newer_than_its_three_hourly_one_skips_members_of_unknown_lists(
    live_personas,
):
    fill(live_personas.account_a, label="a")
    three_hourly = make_backups()["three_hourly"]
    later = fill(live_personas.account_b, label="later", members=3)
    from backups.services import backup_create

    hourly = backup_create(kind="hourly").file
    assert hourly is not None
    wipe()

    call_command("backup_restore", str(path_of(three_hourly)), str(path_of(hourly)))

    run = RestoreRun.objects.get(kind="restore")
    assert run.result["skipped"]["members_member.list_id"] == 3
    from members.models import Member

    assert not Member.objects.filter(pk__in=[m.pk for m in later.members]).exists()
    assert Member.objects.filter(list__account=live_personas.account_a).count() == 12


def test_two_backups_of_the_same_kind_are_refused(live_personas):
    fill(live_personas.account_a, label="a")
    from backups.services import backup_create

    first = backup_create(kind="hourly").file
    second = backup_create(kind="hourly").file
    assert first is not None and second is not None

    with pytest.raises(CommandError, match="both hold members_member"):
        call_command("backup_restore", str(path_of(first)), str(path_of(second)), "--replace")


def test_a_missing_file_is_a_clear_error():
    with pytest.raises(CommandError, match="no such file"):
        call_command("backup_restore", f"/nonexistent/{uuid.uuid4().hex}.hlbk")


def test_a_database_that_cannot_be_reached_is_a_clear_error(live_personas):
    fill(live_personas.account_a, label="a")
    files = make_backups()

    with pytest.raises(CommandError, match="database error"):
        call_command(
            "backup_restore", *[str(path_of(f)) for f in files.values()],
            "--database-url", "postgres://nobody@127.0.0.1:9/nowhere",
        )  # fmt: skip

    assert RestoreRun.objects.get().status == RunStatus.FAILED


def test_when_the_second_connection_stops_the_first_one_changes_nothing_either(live_personas):
    fill(live_personas.account_a, label="a")
    files = make_backups()
    with db.scratch_database(db.params_for_alias(), prefix="test_restore_side") as target:
        db.migrate(target)
        other = psycopg2.connect(**target)
        other.autocommit = True
        with other.cursor() as cursor:
            # Only the opens and clicks, loaded by the second connection, are not empty.
            cursor.execute(
                "INSERT INTO campaigns_trackingevent (event_id, delivery_id, campaign_id, kind,"
                " machine, user_agent, created_at) VALUES (gen_random_uuid(), 1, 1, 'open',"
                " false, '', now())"
            )
            with pytest.raises(CommandError, match="not empty: campaigns_trackingevent"):
                call_command(
                    "backup_restore", *[str(path_of(f)) for f in files.values()],
                    "--database-url", db.url_for(target),
                )  # fmt: skip
            after = snapshot(cursor=cursor)
        other.close()
    assert after["campaigns_trackingevent"] and len(after["campaigns_trackingevent"]) == 1
    assert not any(rows for name, rows in after.items() if name != "campaigns_trackingevent")
