"""An import with trigger_optin into a double opt-in list mails each new member its
confirmation, from a task that walks the import's members in batches, once each."""

from __future__ import annotations

import io
import re
import smtplib
from datetime import timedelta

import pytest
from django.core.mail import EmailMultiAlternatives
from django.test import Client
from django.utils import timezone

from members import optin, services, tasks
from members.imports import ImportOptions, import_create, import_run
from members.models import Import, List, Member, MemberStatus
from members.optin import import_optins_send, optin_send
from tests.conftest import Personas

THREE_NEW = b"email,firstname\nanna@example.dk,Anna\nbo@example.dk,Bo\ncarl@example.dk,Carl\n"


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def nyheder(personas: Personas) -> List:
    return services.list_create(account=personas.account_a, name="Nyheder", double_optin=True)


@pytest.fixture
def queued(monkeypatch) -> list[tuple]:
    """The tasks the import queues after commit: recorded, not sent to the broker."""
    calls: list[tuple] = []
    monkeypatch.setattr(tasks.run_import, "delay", lambda *args: None)
    monkeypatch.setattr(tasks.send_import_optins, "delay", lambda *args: calls.append(args))
    return calls


def run(member_list: List, content: bytes, capture, preview: bool = False, **options) -> Import:
    job = import_create(
        member_list=member_list,
        upload=io.BytesIO(content),
        options=ImportOptions(**options),
        preview=preview,
    )
    with capture(execute=True):  # as if the import's transaction committed
        import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def links(smtp_server) -> dict[str, str]:
    """Recipient -> the confirmation link in the text part of the mail."""
    found = {}
    for (recipient,), message in smtp_server.messages:
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        match = re.search(r"https?://[^/\s]+(/optin/\S+/)", text.get_payload(decode=True).decode())
        assert match, text
        found[recipient] = match.group(1)
    return found


def test_trigger_optin_mails_each_new_member_a_link_that_confirms_it(
    nyheder: List,
    smtp_server,
    queued,
    client: Client,
    django_capture_on_commit_callbacks,
):
    services.member_create(member_list=nyheder, values={"email": "old@example.dk"}, skip_optin=True)
    content = THREE_NEW + b"old@example.dk,Updated\n"  # an update is no new member: no mail
    job = run(nyheder, content, django_capture_on_commit_callbacks, trigger_optin=True)
    assert (job.created, job.updated) == (3, 1)
    assert queued == [(job.pk,)]  # after the commit, one task for the whole import
    new = Member.objects.filter(list=nyheder, imported=True)
    assert {m.status for m in new} == {MemberStatus.UNCONFIRMED}
    assert smtp_server.messages == []  # nothing is mailed inside the import

    tasks.send_import_optins(job.pk)

    sent = links(smtp_server)
    assert set(sent) == {"anna@example.dk", "bo@example.dk", "carl@example.dk"}
    assert all(m["Message-ID"] for _, m in smtp_server.messages)
    assert queued == [(job.pk,)]  # one batch was enough: nothing more queued
    for email, path in sent.items():
        page = client.get(path)
        assert page.status_code == 200, email
        assert Member.objects.get(list=nyheder, email=email).status == MemberStatus.ACTIVE
    assert Member.objects.get(email="old@example.dk").status == MemberStatus.ACTIVE


def test_without_trigger_optin_the_new_members_are_active_and_nobody_is_mailed(
    nyheder: List, smtp_server, queued, django_capture_on_commit_callbacks
):
    job = run(nyheder, THREE_NEW, django_capture_on_commit_callbacks, trigger_optin=False)
    assert job.created == 3
    assert queued == []
    assert set(Member.objects.filter(list=nyheder).values_list("status", flat=True)) == {
        MemberStatus.ACTIVE
    }
    tasks.send_import_optins(job.pk)  # even if it were run
    assert smtp_server.messages == []


def test_a_list_without_double_optin_ignores_trigger_optin(
    personas: Personas, smtp_server, queued, django_capture_on_commit_callbacks
):
    plain = services.list_create(account=personas.account_a, name="Plain")
    job = run(plain, THREE_NEW, django_capture_on_commit_callbacks, trigger_optin=True)
    assert queued == []
    assert not Member.objects.filter(list=plain).exclude(status=MemberStatus.ACTIVE).exists()
    tasks.send_import_optins(job.pk)
    assert smtp_server.messages == []


def test_a_preview_queues_no_mail(nyheder: List, queued, django_capture_on_commit_callbacks):
    job = run(
        nyheder, THREE_NEW, django_capture_on_commit_callbacks, trigger_optin=True, preview=True
    )
    assert job.created == 3
    assert queued == []
    assert import_optins_send(import_id=job.pk) is None


def test_running_the_task_twice_mails_nobody_twice(
    nyheder: List, smtp_server, queued, django_capture_on_commit_callbacks
):
    job = run(nyheder, THREE_NEW, django_capture_on_commit_callbacks, trigger_optin=True)
    tasks.send_import_optins(job.pk)
    tasks.send_import_optins(job.pk)
    assert len(smtp_server.messages) == 3
    assert not Member.objects.filter(list=nyheder, optin_sent_at__isnull=True).exists()


def test_the_task_walks_the_members_in_batches_one_task_after_another(
    nyheder: List, smtp_server, queued, monkeypatch, django_capture_on_commit_callbacks
):
    job = run(nyheder, THREE_NEW, django_capture_on_commit_callbacks, trigger_optin=True)
    monkeypatch.setattr(optin, "IMPORT_BATCH", 2)
    cursor = import_optins_send(import_id=job.pk)
    assert cursor is not None
    assert len(smtp_server.messages) == 2
    assert import_optins_send(import_id=job.pk, after=cursor) is None
    assert len(smtp_server.messages) == 3

    queued.clear()
    Member.objects.filter(list=nyheder).update(optin_sent_at=None)
    tasks.send_import_optins(job.pk)  # the task queues the next batch itself
    assert len(queued) == 1
    (next_job, after) = queued[0]
    assert next_job == job.pk
    tasks.send_import_optins(next_job, after)
    assert len(queued) == 1
    assert len(smtp_server.messages) == 6


def test_an_earlier_imports_unmailed_members_are_not_this_imports_to_mail(
    nyheder: List, smtp_server, queued, django_capture_on_commit_callbacks
):
    old = services.member_create(member_list=nyheder, values={"email": "earlier@example.dk"})
    Member.objects.filter(pk=old.pk).update(
        imported=True, created_at=timezone.now() - timedelta(days=3)
    )
    job = run(nyheder, THREE_NEW, django_capture_on_commit_callbacks, trigger_optin=True)
    tasks.send_import_optins(job.pk)
    recipients = {r for (r,), _ in smtp_server.messages}
    assert "earlier@example.dk" not in recipients
    assert len(recipients) == 3


def test_a_failed_send_releases_the_member_for_the_retry(nyheder: List, smtp_server, monkeypatch):
    member = services.member_create(member_list=nyheder, values={"email": "ny@example.dk"})

    def down(self, fail_silently=False):
        raise ConnectionRefusedError("relay down")

    with monkeypatch.context() as patch:
        patch.setattr(EmailMultiAlternatives, "send", down)
        with pytest.raises(OSError):
            optin_send(member_id=str(member.pk))
    member.refresh_from_db()
    assert member.optin_sent_at is None
    assert optin_send(member_id=str(member.pk))
    assert not optin_send(member_id=str(member.pk))  # a second delivery of the task
    assert len(smtp_server.messages) == 1


def test_an_address_the_relay_refuses_for_good_is_not_tried_again(
    nyheder: List, smtp_server, monkeypatch
):
    member = services.member_create(member_list=nyheder, values={"email": "gone@example.dk"})

    def refused(self, fail_silently=False):
        raise smtplib.SMTPRecipientsRefused({"gone@example.dk": (550, b"no such user")})

    monkeypatch.setattr(EmailMultiAlternatives, "send", refused)
    assert not optin_send(member_id=str(member.pk))
    member.refresh_from_db()
    assert member.optin_sent_at is not None
