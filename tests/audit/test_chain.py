"""The chain: each event links to the one before, with no gaps, also under concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import DataError, connection, connections, transaction
from django.test import RequestFactory

from audit import chain
from audit.models import GENESIS_HASH, AuditEvent
from audit.services import record
from audit.verify import verify
from tests.conftest import Personas


def _texts(seq: int) -> list[str | None]:
    """The row's fields as the text that is hashed."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {chain.TEXT_COLUMNS} FROM audit_auditevent WHERE seq = %s",  # noqa: S608
            [seq],
        )
        return list(cursor.fetchone())


def _last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_each_event_links_to_the_one_before(db):
    before = _last_seq()
    first = record("test.first")
    second = record("test.second")
    assert (first.seq, second.seq) == (before + 1, before + 2)
    assert second.prev_hash == first.hash
    if before == 0:
        assert first.prev_hash == GENESIS_HASH
    assert len(first.hash) == 64 and first.hash != second.hash


def test_the_hash_covers_every_field_and_the_previous_hash(db, personas: Personas):
    request = RequestFactory().post(
        "/admin/accounts/user/1/change/?x=1",
        HTTP_USER_AGENT="Firefox æøå",
        REMOTE_ADDR="2001:db8::1",
    )
    event = record(
        "test.all_fields",
        actor=personas.mallory,
        account=personas.account_a,
        target=personas.alice,
        request=request,
        status=302,
        grant=7,
        reason="Helping Alice",
        extra={"float": 1.5, "nested": {"b": [1, 2], "a": None}},
    )
    stored = AuditEvent.objects.get(seq=event.seq)
    texts = _texts(event.seq)
    assert chain.digest(texts) == stored.hash == event.hash
    # Every field and the link take part: change any one and the hash changes.
    for index, name in enumerate(chain.FIELDS):
        changed = list(texts)
        changed[index] = (texts[index] or "") + "x"
        assert chain.digest(changed) != stored.hash, name
    # A value cannot pass for two: the lengths keep the fields apart.
    moved = list(texts)
    moved[3], moved[4] = (texts[3] or "") + "m", (texts[4] or "")[1:]
    assert chain.digest(moved) != stored.hash
    assert (stored.actor_email, stored.actor_role, stored.account_id) == (
        "mallory@heyloyalty.test",
        "manager",
        personas.account_a.pk,
    )
    assert (stored.target_type, stored.target_id, stored.target_repr) == (
        "accounts.user",
        str(personas.alice.pk),
        "alice@a.test",
    )
    assert (stored.path, stored.method, stored.ip, stored.user_agent) == (
        "/admin/accounts/user/1/change/?x=1",
        "POST",
        "2001:db8::1",
        "Firefox æøå",
    )
    assert stored.extra == {"float": 1.5, "nested": {"a": None, "b": [1, 2]}}
    assert (event.at, event.ip, event.prev_hash) == (stored.at, stored.ip, stored.prev_hash)


def test_the_actor_is_the_requests_user_or_else_anonymous_or_system(db, personas: Personas):
    request = RequestFactory().get("/")
    request.user = personas.root
    assert record("test.x", request=request).actor_role == "admin"
    anonymous = RequestFactory().get("/")
    assert record("test.x", request=anonymous).actor_role == "anonymous"
    assert record("test.x").actor_role == "system"


def test_the_account_comes_from_the_target_when_not_given(db, personas: Personas):
    assert record("test.x", target=personas.account_b).account_id == personas.account_b.pk
    assert record("test.x", target=personas.carol).account_id == personas.account_b.pk
    assert record("test.x", target=personas.root).account_id is None


def test_text_is_cut_to_its_column_and_loses_nul_characters(db):
    event = record("test.x", target_repr="a\x00b" + "x" * 500, reason="r\x00")
    stored = AuditEvent.objects.get(seq=event.seq)
    assert stored.target_repr == ("ab" + "x" * 500)[:200]
    assert stored.reason == "r"
    assert verify().ok


def test_an_event_rolled_back_with_its_action_leaves_no_gap(db):
    before = _last_seq()
    with pytest.raises(RuntimeError), transaction.atomic():
        record("test.rolled_back")
        raise RuntimeError("the action failed")
    assert record("test.kept").seq == before + 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain():
    """Eight threads, each with its own database connection, write 25 events each: half
    inside their own transactions, of which one in five rolls back, half on their own
    (as the audit middleware does). The chain stays gap-free and every link holds."""
    before = _last_seq()
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for i in range(25):
                if number % 2:
                    if i % 5 != 4:
                        record("test.concurrent", extra={"writer": number, "i": i})
                    continue
                try:
                    with transaction.atomic():
                        record("test.concurrent", extra={"writer": number, "i": i})
                        if i % 5 == 4:
                            raise LookupError("rolled back on purpose")
                except LookupError:
                    pass
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = list(
        AuditEvent.objects.filter(seq__gt=before).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(before + 1, before + 1 + 8 * 20))
    result = verify()
    assert result.ok, result.problems
    assert result.last_seq == before + 160


@pytest.mark.django_db(transaction=True)
def test_an_event_written_on_its_own_commits_at_once_and_a_failed_one_leaves_no_trace():
    before = _last_seq()
    event = record("test.own_transaction")
    assert not connection.in_atomic_block
    other = connections.create_connection("default")  # as another process would see it
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT hash FROM audit_auditevent WHERE seq = %s", [event.seq])
            assert cursor.fetchone() == (event.hash,)
    finally:
        other.close()
    with pytest.raises(DataError):
        record("test.too_big", status=100_000)  # no smallint: the insert fails
    assert record("test.after").seq == before + 2  # the connection works, no gap
    assert verify().ok
