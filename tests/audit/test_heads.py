"""The daily chain head: written into BACKUP_DIR and mailed to the technicians, and
usable with ``audit_verify --head``."""

from __future__ import annotations

import io

from django.contrib.auth.models import Group
from django.core.management import call_command

from audit.heads import HEADS_FILE
from audit.services import record
from audit.tasks import publish_head
from heyloyalty.schedule import BEAT_SCHEDULE
from tests.conftest import Personas


def test_the_head_is_published_daily():
    entry = BEAT_SCHEDULE["audit.publish_head"]
    assert entry["task"] == "audit.tasks.publish_head"
    assert entry["schedule"].hour == {0}  # once a day, just after midnight


def test_the_head_goes_into_the_backup_dir_and_to_the_technicians(
    personas: Personas, settings, tmp_path, smtp_server
):
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.ALERT_EMAILS = ["ops@example.com", "Root@heyloyalty.test"]
    Group.objects.get(name="Technicians").user_set.add(personas.root)
    record("test.event")
    last = record("test.event")

    publish_head.apply().get()

    lines = (tmp_path / "backups" / HEADS_FILE).read_text().splitlines()
    assert len(lines) == 1
    published_at, token, event_at = lines[0].split(" ")
    assert token == f"{last.seq}:{last.hash}"
    assert published_at.endswith("Z") and event_at.endswith("Z")
    [(recipients, message)] = smtp_server.messages
    assert sorted(recipients) == ["ops@example.com", "root@heyloyalty.test"]
    assert message["Subject"] == f"Heyloyalty audit log head: {last.seq}"
    assert message["Message-ID"]
    body = message.get_payload(decode=True).decode()
    assert last.hash in body
    assert f"audit_verify --head {token}" in body

    # A second run (a retried task) adds a line: harmless.
    publish_head.apply().get()
    assert len((tmp_path / "backups" / HEADS_FILE).read_text().splitlines()) == 2

    out = io.StringIO()
    call_command("audit_verify", "--head", token, stdout=out)
    assert f"matches the published head {last.seq}" in out.getvalue()


def test_without_recipients_the_head_is_still_written(db, settings, tmp_path, smtp_server):
    settings.BACKUP_DIR = tmp_path
    settings.ALERT_EMAILS = []
    record("test.event")
    publish_head.apply().get()
    assert (tmp_path / HEADS_FILE).read_text().count("\n") == 1
    assert smtp_server.messages == []
