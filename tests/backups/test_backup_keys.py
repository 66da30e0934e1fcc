"""Rotating the backup key: retained backups are re-sealed with the new key (their data
and checksums untouched), and the old key is retired only when no retained backup
needs it; old backups stay restorable throughout."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from backups import container
from backups.models import BackupFile, RunStatus
from backups.services import backup_verify
from heyloyalty import keys
from tests.backups.conftest import backup_key_spec, fill, make_backups, path_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key_file(tmp_path, monkeypatch, settings):
    path = tmp_path / "backup-keys"
    path.write_text(settings.BACKUP_ENCRYPTION_KEYS + "\n")
    monkeypatch.delenv("BACKUP_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEYS_FILE", str(path))
    return path


def rotate(*args: str) -> dict:
    out = StringIO()
    call_command("keys_rotate", "--kind", "backup", *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_rotation_re_seals_retained_backups_and_retires_the_old_key(live_personas, key_file):
    fill(live_personas.account_a, label="a")
    files = make_backups()
    checksums = {f.name: [t["sha256"] for t in f.manifest["tables"]] for f in files.values()}
    old_material = keys.backup_keys()[0].material

    result = rotate()

    assert result["added"] == "b2" and result["retired"] == ["b1"] and result["reencrypted"] == 2
    assert [k.id for k in keys.backup_keys()] == ["b2"]
    assert old_material not in key_file.read_text()
    for item in BackupFile.objects.all():
        assert item.key_id == "b2"
        opened = container.open_backup(path_of(item), keys.backup_keys())
        assert opened.key_id == "b2"
        assert [t["sha256"] for t in opened.manifest["tables"]] == checksums[item.name]
        assert backup_verify(item=item).status == RunStatus.SUCCEEDED


def test_a_backup_key_still_needed_by_a_retained_backup_stays(
    live_personas, key_file, monkeypatch, settings
):
    fill(live_personas.account_a, label="a")
    files = make_backups()
    # One file is gone from this disk (kept only elsewhere): it cannot be re-sealed here.
    path_of(files["hourly"]).rename(path_of(files["hourly"]).with_suffix(".away"))

    result = rotate()

    assert result["retired"] == []
    assert [k.id for k in keys.backup_keys()] == ["b2", "b1"]
    assert BackupFile.objects.get(name=files["hourly"].name).key_id == "b1"


def test_the_first_backup_key_can_be_made_by_rotation(settings, tmp_path, monkeypatch, db):
    path = tmp_path / "backup-keys"
    monkeypatch.delenv("BACKUP_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEYS_FILE", str(path))
    settings.BACKUP_ENCRYPTION_KEYS = ""

    result = rotate()

    assert result["added"] == "b1"
    assert keys.parse_keys(path.read_text(), name="x")[0].id == "b1"


def test_keys_in_the_environment_are_printed_to_be_set_not_written(
    live_personas, settings, monkeypatch
):
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEYS", settings.BACKUP_ENCRYPTION_KEYS)
    settings.BACKUP_ENCRYPTION_KEYS = backup_key_spec("b1")
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEYS", settings.BACKUP_ENCRYPTION_KEYS)

    result = rotate()

    assert result["set"]["BACKUP_ENCRYPTION_KEYS"].startswith("b2:")
    assert result["written"] == []
    assert "--finish" in result["next_step"]
