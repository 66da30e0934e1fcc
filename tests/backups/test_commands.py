"""The operations commands print progress, and with --json one object on stdout."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from backups.models import BackupFile
from tests.backups.conftest import fill, path_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_backup_create_prints_progress_then_where_the_file_is(live_personas):
    fill(live_personas.account_a, label="a")
    out = StringIO()

    call_command("backup_create", "--kind", "hourly", stdout=out)

    text = out.getvalue()
    assert "members_member: 12 rows" in text
    item = BackupFile.objects.get()
    assert str(path_of(item)) in text and path_of(item).is_file()


def test_backup_create_json_is_one_object_with_progress_on_stderr(live_personas):
    fill(live_personas.account_a, label="a")
    out, err = StringIO(), StringIO()

    call_command("backup_create", "--kind", "three_hourly", "--json", stdout=out, stderr=err)

    result = json.loads(out.getvalue())
    assert result["status"] == "succeeded" and result["key_id"] == "b1"
    assert result["tables"]["members_list"] == 1 and result["tables"]["accounts_apikey"] == 1
    assert "accounts_account:" in err.getvalue()
    assert oct(path_of(BackupFile.objects.get()).stat().st_mode & 0o777) == "0o600"


def test_backup_restore_extracts_the_files_a_backup_carries(live_personas, settings, tmp_path):
    from backups import storage
    from tests.backups.conftest import make_backups, wipe

    heads = storage.backup_dir() / "audit-heads.log"
    heads.write_text("2026-03-01 seq=41 hash=abc\n")
    fill(live_personas.account_a, label="a")
    files = make_backups()
    wipe()

    call_command(
        "backup_restore", *[str(path_of(f)) for f in files.values()],
        "--extract", str(tmp_path / "out"), stdout=StringIO(),
    )  # fmt: skip

    assert (tmp_path / "out" / "audit-heads.log").read_text() == heads.read_text()
