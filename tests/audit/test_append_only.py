"""Acceptance 2: the log is append-only, and a rewrite behind the trigger's back is found.

Disabling the triggers needs the table's owner or a superuser: the tests connect as
the postgres superuser, as such an attacker would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit import chain
from audit.models import AuditEvent
from audit.services import record

BASE = Path(__file__).resolve().parent.parent.parent


def _events(count: int) -> list[AuditEvent]:
    return [record("test.event", reason=f"event {i}") for i in range(count)]


def _sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def _verify(*args: str) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except CommandError as error:
        return out.getvalue(), err.getvalue(), error
    return out.getvalue(), err.getvalue(), None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET reason = 'nothing happened' WHERE seq = %s",
        "DELETE FROM audit_auditevent WHERE seq = %s",
        "TRUNCATE audit_auditevent",
    ],
)
def test_changing_or_deleting_an_event_through_sql_is_refused(db, statement: str):
    event = record("test.event", reason="something happened")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        _sql(statement, [event.seq] if "%s" in statement else None)
    assert AuditEvent.objects.get(seq=event.seq).reason == "something happened"


def test_the_application_cannot_change_an_event_either(db):
    event = record("test.event")
    event.reason = "rewritten"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.delete()


def test_an_intact_chain_verifies(db):
    _events(3)
    out, _, error = _verify()
    assert error is None
    assert out.startswith("OK: ")


def test_with_the_trigger_disabled_audit_verify_names_the_first_broken_row(db):
    events = _events(6)
    altered, deleted = events[1], events[3]
    _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    _sql("UPDATE audit_auditevent SET reason = 'nothing happened' WHERE seq = %s", [altered.seq])
    _sql("DELETE FROM audit_auditevent WHERE seq = %s", [deleted.seq])

    out, _, error = _verify()
    assert error is not None and error.returncode == 1
    assert f"row {altered.seq}" in str(error)
    assert out == f"BROKEN: row {altered.seq}: contents do not match its hash (altered)\n"

    out, _, error = _verify("--all", "--json")
    assert error is not None
    report = json.loads(out)
    assert report["ok"] is False
    assert report["first_broken_seq"] == altered.seq
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [
        (altered.seq, "altered"),
        (deleted.seq, "missing"),
    ]


def test_a_deleted_row_alone_is_named_as_missing(db):
    events = _events(4)
    _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    _sql("DELETE FROM audit_auditevent WHERE seq IN (%s, %s)", [events[1].seq, events[2].seq])
    _, _, error = _verify()
    assert error is not None
    assert f"row {events[1].seq}: missing (rows {events[1].seq} to {events[2].seq} are gone)" in (
        str(error)
    )


def test_a_rewrite_that_recomputes_every_hash_is_caught_by_a_published_head(db):
    """A superuser who alters a row and recomputes the chain after it fools the table
    alone; the head published before the rewrite does not match any more."""
    events = _events(4)
    published = f"{events[-1].seq}:{events[-1].hash}"
    assert _verify("--head", published)[2] is None

    _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    _sql("UPDATE audit_auditevent SET reason = 'nothing happened' WHERE seq = %s", [events[1].seq])
    prev_hash = events[0].hash
    for event in events[1:]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {chain.TEXT_COLUMNS} FROM audit_auditevent WHERE seq = %s",  # noqa: S608
                [event.seq],
            )
            texts = list(cursor.fetchone())
        texts[-1] = prev_hash
        new_hash = chain.digest(texts)
        _sql(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s",
            [prev_hash, new_hash, event.seq],
        )
        prev_hash = new_hash

    assert _verify()[2] is None  # the table alone looks fine
    _, _, error = _verify("--head", published)
    assert error is not None
    assert f"row {events[-1].seq}: hash differs from the published head" in str(error)


def test_rows_cut_off_the_end_are_caught_by_a_published_head(db):
    events = _events(3)
    published = f"{events[-1].seq}:{events[-1].hash}"
    _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    _sql("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq])
    assert _verify()[2] is None
    _, _, error = _verify("--head", published)
    assert error is not None
    assert "the published head is missing" in str(error)


@pytest.mark.parametrize("head", ["12", "x:abc", "5:" + "g" * 64])
def test_a_malformed_head_is_a_clear_error(db, head: str):
    _, _, error = _verify("--head", head)
    assert error is not None
    assert str(error).startswith("--head: a head is SEQ:HASH")


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_1_when_the_chain_is_broken():
    """The real command line, on the committed table; the table is emptied afterwards so
    that the rest of the session starts from an intact chain."""
    events = _events(3)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@"
        f"{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    command = [sys.executable, "manage.py", "audit_verify"]
    try:
        healthy = subprocess.run(command, cwd=BASE, env=env, capture_output=True, text=True)
        assert healthy.returncode == 0, healthy.stderr
        _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        _sql("UPDATE audit_auditevent SET action = 'x' WHERE seq = %s", [events[1].seq])
        broken = subprocess.run(command, cwd=BASE, env=env, capture_output=True, text=True)
        assert broken.returncode == 1
        assert f"row {events[1].seq}" in broken.stdout
        assert f"the audit chain is broken: row {events[1].seq}" in broken.stderr
    finally:
        _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        _sql("DELETE FROM audit_auditevent")
        _sql("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
