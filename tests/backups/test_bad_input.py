"""A backup file that is cut short or altered, the wrong key, a manifest that does not
match, no room on the disk: each stops with a clear error before anything is changed.
And what a backup file must never show: an email address or an API secret."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backups import container, storage
from backups.models import BackupFile, BackupRun, RestoreRun, RunStatus
from backups.services import backup_create
from heyloyalty import keys
from tests.backups.conftest import ALERTS, backup_key_spec, fill, make_backups, path_of, snapshot
from tests.backups.conftest import wipe as wipe_all

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backed_up(live_personas):
    filled = fill(live_personas.account_a, label="a")
    files = make_backups()
    return filled, files


def restore_fails(files: list, match: str) -> None:
    """Restoring into the emptied database stops with ``match`` and leaves it empty."""
    wipe_all()
    with pytest.raises(CommandError, match=match):
        call_command("backup_restore", *[str(f) for f in files])
    assert not any(snapshot().values())
    assert RestoreRun.objects.filter(kind="restore").latest("started_at").status == "failed"


def test_no_email_address_or_api_secret_can_be_found_in_a_backup_file(backed_up):
    filled, files = backed_up
    data = b"".join(path_of(f).read_bytes() for f in files.values())
    secrets = [filled.api_secret, filled.webhook_secret, *filled.emails, "Åse 1", "a.test"]

    for secret in secrets:
        assert secret.encode() not in data, secret
        assert secret.encode("utf-16-le") not in data, secret
    # Nor in what is kept of the backup in the database and shown in the admin panel.
    kept = json.dumps([f.manifest for f in BackupFile.objects.all()])
    assert not any(secret in kept for secret in secrets)


def test_the_api_secret_stays_encrypted_inside_the_backup(backed_up):
    filled, files = backed_up
    opened = container.open_backup(path_of(files["three_hourly"]), keys.backup_keys())
    reader = container.Reader(opened)
    try:
        for record in reader:
            data = b""
            while block := reader.read(container.BLOCK):
                data += block
            if record.meta.get("table") == "accounts_apikey":
                assert filled.api_secret.encode() not in data
                assert b"$gAAAA" in data  # the key ring's token, as stored
    finally:
        reader.close()


def test_a_truncated_file_is_refused(backed_up, tmp_path):
    _, files = backed_up
    whole = path_of(files["hourly"]).read_bytes()
    cut = tmp_path / files["hourly"].name
    cut.write_bytes(whole[: len(whole) * 2 // 3])

    restore_fails([path_of(files["three_hourly"]), cut], "truncated")


@pytest.mark.parametrize(
    ("where", "match"),
    [("data", "corrupted"), ("manifest", "file was altered"), ("header", "file was altered")],
)
def test_an_altered_byte_is_refused(backed_up, tmp_path, where, match):
    _, files = backed_up
    path = path_of(files["hourly"])
    data = bytearray(path.read_bytes())
    _, _, data_start = container.read_header(path)
    position = {"data": data_start + 40, "manifest": len(data) - 60, "header": 20}[where]
    data[position] ^= 0x01
    altered = tmp_path / files["hourly"].name
    altered.write_bytes(bytes(data))

    restore_fails([path_of(files["three_hourly"]), altered], match)


def test_a_key_that_is_not_in_the_ring_is_named(backed_up, settings):
    _, files = backed_up
    settings.BACKUP_ENCRYPTION_KEYS = backup_key_spec("b7")

    restore_fails([path_of(f) for f in files.values()], "'b1', which is not in BACKUP_ENC")


def test_the_wrong_key_under_the_right_id_is_refused(backed_up, settings):
    _, files = backed_up
    settings.BACKUP_ENCRYPTION_KEYS = backup_key_spec("b1")

    restore_fails([path_of(f) for f in files.values()], "does not open")


def test_a_manifest_that_does_not_match_the_data_is_refused(backed_up, tmp_path):
    _, files = backed_up
    opened = container.open_backup(path_of(files["hourly"]), keys.backup_keys())
    lying = tmp_path / files["hourly"].name
    with lying.open("wb") as out:
        # The same data, sealed with the right key, under a manifest that says otherwise.
        writer = container.Writer(
            out, key=keys.backup_keys()[0], kind="hourly", created_at="2026-01-01T00:00:00"
        )
        with opened.path.open("rb") as source:
            for chunk in container._chunks(opened, source):
                writer._seal(chunk)  # chunk for chunk, as a re-key does
        manifest = dict(opened.manifest)
        manifest["tables"] = [dict(t) for t in manifest["tables"]]
        manifest["tables"][0]["rows"] += 1
        writer.finish(manifest)

    restore_fails([path_of(files["three_hourly"]), lying], "does not match its manifest")


def test_a_disk_without_room_for_the_backup_refuses_it_and_alerts(
    live_personas, settings, mailoutbox
):
    fill(live_personas.account_a, label="a")
    settings.BACKUP_MIN_FREE_BYTES = 10**18

    run = backup_create(kind="hourly")

    assert run.status == RunStatus.FAILED
    assert "not enough free space" in run.error
    assert not list(storage.backup_dir().iterdir())  # not even a partial file
    assert not BackupFile.objects.exists()
    assert [m.to for m in mailoutbox] == [[ALERTS]]
    assert "backup failed" in mailoutbox[0].subject
    assert run.alerted_at is not None


def test_a_backup_without_a_backup_key_fails_clearly_and_alerts(
    live_personas, settings, mailoutbox
):
    settings.BACKUP_ENCRYPTION_KEYS = ""

    run = backup_create(kind="three_hourly")

    assert run.status == RunStatus.FAILED
    assert "BACKUP_ENCRYPTION_KEYS is not set" in run.error
    assert len(mailoutbox) == 1
    assert BackupRun.objects.get().alerted_at is not None
