"""One account restored into a database that holds other accounts: the account is as it
was in the backup, and every row of the others is as it was before the restore."""

from __future__ import annotations

import psycopg2
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import services as account_services
from accounts.models import Account, ApiKey, ManagerAccess
from audit.models import AuditEvent
from backups import db
from backups.models import RestoreRun
from campaigns.models import Campaign, TrackingEvent
from members import services as member_services
from members.models import List, Member
from tests.backups.conftest import fill, make_backups, path_of, snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def paths(files) -> list[str]:
    return [str(path_of(f)) for f in files.values()]


def test_one_account_is_restored_and_the_others_are_untouched(live_personas):
    a = fill(live_personas.account_a, label="a")
    fill(live_personas.account_b, label="b", members=6)
    a_then = snapshot(account=live_personas.account_a)
    files = make_backups()
    # After the backup, both accounts change.
    Member.objects.filter(pk__in=[m.pk for m in a.members[:5]]).delete()
    List.objects.filter(pk=a.member_list.pk).update(name="renamed by mistake")
    newer = member_services.list_create(account=live_personas.account_a, name="made later")
    member_services.member_create(member_list=newer, values={"email": "later@a.test"})
    account_services.apikey_create(account=live_personas.account_a, name="made later")
    TrackingEvent.objects.filter(campaign_id=a.campaign.pk).delete()
    fill(live_personas.account_b, label="b2", members=3)
    b_now = snapshot(account=live_personas.account_b)
    everything_now = snapshot()

    call_command("backup_restore", *paths(files), "--account", str(live_personas.account_a.pk))

    assert snapshot(account=live_personas.account_a) == a_then
    assert snapshot(account=live_personas.account_b) == b_now
    assert not List.objects.filter(name="made later").exists()
    assert ApiKey.objects.filter(account=live_personas.account_a).count() == 1
    # Staff and rows of no account (Mallory, Oscar, Root) are as they were.
    after = snapshot()
    staff = [r for r in everything_now["accounts_user"] if "heyloyalty.test" in r]
    assert staff and all(r in after["accounts_user"] for r in staff)
    event = AuditEvent.objects.filter(action="backup.restored").latest("seq")
    assert event.account_id == live_personas.account_a.pk
    run = RestoreRun.objects.get(kind="restore")
    assert run.rows == sum(len(rows) for rows in a_then.values())
    assert run.result["deleted"]["members_list"] == 1  # the list made after the backup


def test_an_account_deleted_by_mistake_comes_back_with_its_ids(live_personas):
    a = fill(live_personas.account_a, label="a")
    fill(live_personas.account_b, label="b", members=4)
    a_then = snapshot(account=live_personas.account_a)
    b_then = snapshot(account=live_personas.account_b)
    files = make_backups()
    Campaign.objects.filter(account=live_personas.account_a).delete()
    List.objects.filter(account=live_personas.account_a).delete()
    live_personas.account_a.users.all().delete()
    ApiKey.objects.filter(account=live_personas.account_a).delete()
    Account.objects.filter(pk=live_personas.account_a.pk).delete()

    call_command("backup_restore", *paths(files), "--account", str(live_personas.account_a.pk))

    assert snapshot(account=live_personas.account_a) == a_then
    assert snapshot(account=live_personas.account_b) == b_then
    assert Member.objects.get(pk=a.members[0].pk).list_id == a.member_list.pk


def test_only_the_hourly_backup_restores_the_accounts_members_and_statistics(live_personas):
    a = fill(live_personas.account_a, label="a")
    fill(live_personas.account_b, label="b", members=4)
    files = make_backups()
    a_then = snapshot(account=live_personas.account_a)
    Member.objects.filter(list=a.member_list).delete()
    b_now = snapshot(account=live_personas.account_b)

    call_command(
        "backup_restore", str(path_of(files["hourly"])), "--account",
        str(live_personas.account_a.pk),
    )  # fmt: skip

    assert snapshot(account=live_personas.account_a) == a_then
    assert snapshot(account=live_personas.account_b) == b_now


def test_ids_used_by_another_account_stop_the_restore_before_anything_changes(live_personas):
    fill(live_personas.account_a, label="a")
    files = make_backups()
    a_list = List.objects.get(account=live_personas.account_a)
    with db.scratch_database(db.params_for_alias(), prefix="test_collide") as target:
        db.migrate(target)
        other = psycopg2.connect(**target)
        other.autocommit = True
        with other.cursor() as cursor:
            # Another installation: its own customer whose list has the same id.
            cursor.execute(
                "INSERT INTO accounts_account (id, name, timezone, default_from_name, "
                "default_from_email, manager_access, created_at) VALUES "
                "(900, 'Elsewhere', 'UTC', '', '', %s, now())",
                [ManagerAccess.ASK],
            )
            cursor.execute(
                "INSERT INTO members_list (id, account_id, name, country_id, timezone, "
                "date_format, duplicates, double_optin, created_at, updated_at) VALUES "
                "(%s, 900, 'Theirs', 1, 'UTC', 'dd-mm-yyyy', 'allow', false, now(), now())",
                [a_list.pk],
            )
            before = snapshot(cursor=cursor)

            with pytest.raises(
                CommandError, match=r"members_list: the ids .* are used by other rows"
            ):
                call_command(
                    "backup_restore", *paths(files), "--account",
                    str(live_personas.account_a.pk), "--database-url", db.url_for(target),
                )  # fmt: skip

            assert snapshot(cursor=cursor) == before
        other.close()


def test_an_account_that_is_not_in_the_backup_is_a_clear_error(live_personas):
    fill(live_personas.account_a, label="a")
    files = make_backups()

    with pytest.raises(CommandError, match="account 4242 is not in this backup"):
        call_command("backup_restore", *paths(files), "--account", "4242")


def test_replace_does_not_go_with_one_account(live_personas):
    with pytest.raises(CommandError, match="--replace"):
        call_command("backup_restore", "x.hlbk", "--account", "1", "--replace")
