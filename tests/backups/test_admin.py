"""Backups and keys in the admin panel: main admins only; key ids and ages, never values."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupFile, BackupRun, RestoreRun, RunStatus

pytestmark = pytest.mark.django_db

PAGES = [
    "admin:backups_backuprun_changelist",
    "admin:backups_backupfile_changelist",
    "admin:backups_restorerun_changelist",
    "admin:backups_keys",
]


@pytest.fixture
def history():
    item = BackupFile.objects.create(
        name="heyloyalty-hourly-x.hlbk", kind="hourly", created_at=timezone.now(),
        size=123456, sha256="0" * 64, key_id="b1", rows=42, manifest={},
    )  # fmt: skip
    BackupRun.objects.create(
        kind="hourly", status=RunStatus.SUCCEEDED, file=item, size=123456, rows=42, duration=1.5
    )
    BackupRun.objects.create(kind="hourly", status=RunStatus.FAILED, error="disk full")
    RestoreRun.objects.create(kind="drill", status=RunStatus.SUCCEEDED, file=item)
    return item


def test_a_main_admin_sees_runs_files_restores_and_drills(client, personas, history):
    client.force_login(personas.root)

    runs = client.get(reverse("admin:backups_backuprun_changelist"))
    assert runs.status_code == 200
    assert "Failed" in runs.text and "120.6 KB" in runs.text
    assert history.name in client.get(reverse("admin:backups_backupfile_changelist")).text
    assert "Restore drill" in client.get(reverse("admin:backups_restorerun_changelist")).text
    assert reverse("admin:backups_keys") in runs.text


def test_the_keys_page_shows_ids_and_ages_never_values(client, personas, settings):
    material = Fernet.generate_key().decode()
    settings.BACKUP_ENCRYPTION_KEYS = f"b3:2026-01-01:{material}"
    client.force_login(personas.root)

    page = client.get(reverse("admin:backups_keys"))

    assert page.status_code == 200
    assert "b3" in page.text and "2026-01-01" in page.text
    for value in (settings.SECRET_KEY, settings.FIELD_ENCRYPTION_KEYS.split(":")[-1], material):
        assert value not in page.text


@pytest.mark.parametrize("page", PAGES)
def test_an_account_manager_sees_none_of_it(client, personas, page):
    client.force_login(personas.mallory)
    assert client.get(reverse(page)).status_code == 403


@pytest.mark.parametrize("page", PAGES)
def test_a_customer_is_sent_to_sign_in(client, personas, page):
    client.force_login(personas.alice)
    assert client.get(reverse(page)).status_code == 302


def test_a_drill_can_be_asked_for_from_the_admin_panel(
    client, personas, history, django_capture_on_commit_callbacks
):
    client.force_login(personas.root)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("admin:backups_backupfile_changelist"),
            {"action": "drill", "_selected_action": [history.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 restore drill(s) queued" in response.text
    assert len(callbacks) == 1


def test_the_keys_page_speaks_danish(client, personas, settings):
    settings.KEY_ROTATION_DAYS = 0  # every key in use is due
    client.force_login(personas.root)

    page = client.get(reverse("admin:backups_keys"), HTTP_ACCEPT_LANGUAGE="da")

    assert "Systemnøgler" in page.text
    assert "Nøglerne der signerer sessioner" in page.text
    assert "nøgler i brug skal udskiftes" in page.text
