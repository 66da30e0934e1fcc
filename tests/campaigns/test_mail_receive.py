"""mail_receive: what Postfix pipes in for bounces+TOKEN@ and unsubscribe+TOKEN@."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import BytesIO, StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from campaigns.models import Bounce, Delivery, Unsubscribe
from campaigns.tokens import bounce_token, unsubscribe_token
from members.models import MemberStatus
from tests.campaigns.test_bounces import make_delivery, make_list, make_member, status_of
from tests.conftest import Personas

DOMAIN = "bounces.bageriet.dk"


def receive(message: bytes, recipient: str | None) -> tuple[dict, str]:
    out, err = StringIO(), StringIO()
    args = ["mail_receive", "--json"] + (["--recipient", recipient] if recipient else [])
    call_command(*args, stdin=BytesIO(message), stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def dsn(to: str, status: str, action: str, diagnostic: str) -> bytes:
    """A delivery status notification as Postfix writes it."""
    return f"""Return-Path: <>
Delivered-To: {to}
Received: by mx.bageriet.dk (Postfix) id 4ABC123; Thu, 26 Nov 2026 10:00:00 +0100 (CET)
Date: Thu, 26 Nov 2026 10:00:00 +0100 (CET)
From: MAILER-DAEMON@mx.bageriet.dk (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4ABC123.1764147600/mx.bageriet.dk"
Message-Id: <20261126090000.4ABC123@mx.bageriet.dk>

This is a MIME-encapsulated message.

--4ABC123.1764147600/mx.bageriet.dk
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.bageriet.dk.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<hans@example.dk>: host mx.example.dk[192.0.2.10] said: {diagnostic}

--4ABC123.1764147600/mx.bageriet.dk
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.bageriet.dk
X-Postfix-Queue-ID: 4ABC123
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Thu, 26 Nov 2026 09:59:58 +0100 (CET)

Final-Recipient: rfc822; hans@example.dk
Original-Recipient: rfc822;hans@example.dk
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.dk
Diagnostic-Code: smtp; {diagnostic}

--4ABC123.1764147600/mx.bageriet.dk
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{to}>
From: Bageriet <nyheder@bageriet.dk>
To: hans@example.dk
Subject: Novembertilbud

--4ABC123.1764147600/mx.bageriet.dk--
""".replace("\n", "\r\n").encode()


OUT_OF_OFFICE = b"""From: Hans Hansen <hans@example.dk>
To: Bageriet <BOUNCES>
Subject: Automatisk svar: Novembertilbud
Auto-Submitted: auto-replied
X-Autoreply: yes
Content-Type: text/plain; charset=utf-8

Jeg er paa ferie til 1. december og laeser ikke mail.
"""


def test_a_hard_bounce_dsn_marks_the_member_bounced(personas: Personas):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    to = f"bounces+{bounce_token(delivery.pk)}@{DOMAIN}"
    diagnostic = (
        "550 5.1.1 <hans@example.dk>: Recipient address rejected:\n"
        "    User unknown in virtual mailbox table"
    )
    result, err = receive(dsn(to, "5.1.1", "failed", diagnostic), to)
    assert status_of(member) == (MemberStatus.BOUNCED, MemberStatus.BOUNCED)
    bounce = Bounce.objects.get()
    assert (bounce.kind, bounce.source, bounce.delivery_id) == ("hard", "dsn", delivery.pk)
    assert bounce.reason == (
        "smtp; 550 5.1.1 <hans@example.dk>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert result["action"] == "bounce"
    assert (result["kind"], result["delivery"], result["bounce"]) == (
        "hard",
        delivery.pk,
        bounce.pk,
    )
    assert err == ""
    # Postfix may deliver the same message twice: still one bounce.
    receive(dsn(to, "5.1.1", "failed", diagnostic), to)
    assert Bounce.objects.count() == 1


def test_a_soft_bounce_dsn_is_only_recorded(personas: Personas):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    to = f"bounces+{bounce_token(delivery.pk)}@{DOMAIN}"
    result, _ = receive(dsn(to, "4.2.2", "delayed", "452 4.2.2 Mailbox full"), to)
    assert result["kind"] == "soft"
    assert status_of(member) == (MemberStatus.ACTIVE, MemberStatus.ACTIVE)
    bounce = Bounce.objects.get()
    assert (bounce.kind, bounce.reason) == ("soft", "smtp; 452 4.2.2 Mailbox full")


def test_a_failed_dsn_with_a_temporary_status_is_soft(personas: Personas):
    member = make_member(make_list(personas.account_a))
    to = f"bounces+{bounce_token(make_delivery(member).pk)}@{DOMAIN}"
    receive(dsn(to, "4.4.7", "failed", "421 4.4.7 message expired"), to)
    assert Bounce.objects.get().kind == "soft"
    assert status_of(member)[0] == MemberStatus.ACTIVE


def test_a_delivered_report_changes_nothing(personas: Personas):
    member = make_member(make_list(personas.account_a))
    to = f"bounces+{bounce_token(make_delivery(member).pk)}@{DOMAIN}"
    result, _ = receive(dsn(to, "2.0.0", "delivered", "250 2.0.0 Ok: queued"), to)
    assert result["action"] == "ignored"
    assert not Bounce.objects.exists()


def test_an_out_of_office_reply_is_ignored(personas: Personas):
    member = make_member(make_list(personas.account_a))
    to = f"bounces+{bounce_token(make_delivery(member).pk)}@{DOMAIN}"
    result, err = receive(OUT_OF_OFFICE.replace(b"BOUNCES", to.encode()), to)
    assert result == {"action": "ignored", "recipient": to, "reason": "auto-reply"}
    assert err == ""
    assert not Bounce.objects.exists()
    assert status_of(member)[0] == MemberStatus.ACTIVE


def test_a_forged_token_is_reported_on_stderr_and_dropped(personas: Personas):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    token = bounce_token(delivery.pk)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, unsubscribe_token(member.pk)):  # another kind of token is forged too
        to = f"bounces+{bad}@{DOMAIN}"
        result, err = receive(dsn(to, "5.1.1", "failed", "550 5.1.1 unknown"), to)
        assert result["action"] == "ignored"
        assert "not ours" in err
    assert not Bounce.objects.exists()
    assert status_of(member)[0] == MemberStatus.ACTIVE


def test_a_deleted_delivery_is_dropped_quietly(personas: Personas):
    delivery = make_delivery(make_member(make_list(personas.account_a)))
    to = f"bounces+{bounce_token(delivery.pk)}@{DOMAIN}"
    Delivery.objects.filter(pk=delivery.pk).delete()
    result, _ = receive(dsn(to, "5.1.1", "failed", "550 5.1.1 unknown"), to)
    assert result["reason"] == "delivery gone"


def test_the_recipient_falls_back_to_the_delivered_to_header(personas: Personas):
    member = make_member(make_list(personas.account_a))
    to = f"bounces+{bounce_token(make_delivery(member).pk)}@{DOMAIN}"
    receive(dsn(to, "5.1.1", "failed", "550 5.1.1 unknown"), None)
    assert status_of(member)[0] == MemberStatus.BOUNCED


def test_an_abuse_report_is_a_complaint(personas: Personas):
    member = make_member(make_list(personas.account_a))
    to = f"bounces+{bounce_token(make_delivery(member).pk)}@{DOMAIN}"
    arf = f"""From: <staff@hotmail.example>
To: {to}
Subject: complaint about message
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="part1"

--part1
Content-Type: text/plain

This is an email abuse report.

--part1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Rcpt-To: <hans@example.dk>

--part1
Content-Type: text/rfc822-headers

From: Bageriet <nyheder@bageriet.dk>
To: hans@example.dk

--part1--
""".encode()
    result, _ = receive(arf, to)
    assert result["action"] == "complaint"
    assert status_of(member)[0] == MemberStatus.COMPLAINED


def test_a_mail_to_the_unsubscribe_address_unsubscribes(personas: Personas):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    to = f"unsubscribe+{unsubscribe_token(member.pk, delivery.campaign_id)}@{DOMAIN}"
    message = f"From: hans@example.dk\nTo: {to}\nSubject: unsubscribe\n\n".encode()
    result, _ = receive(message, to)
    assert result == {
        "action": "unsubscribe",
        "recipient": to,
        "member": str(member.pk),
        "list": member.list_id,
        "changed": True,
    }
    assert status_of(member)[0] == MemberStatus.UNSUBSCRIBED
    row = Unsubscribe.objects.get()
    assert (row.source, row.campaign_id) == ("mailto", delivery.campaign_id)
    again, _ = receive(message, None)  # from the To header this time
    assert again["changed"] is False
    assert Unsubscribe.objects.count() == 1


def test_a_forged_unsubscribe_token_changes_nothing(personas: Personas):
    member = make_member(make_list(personas.account_a))
    to = f"unsubscribe+{bounce_token(1)}@{DOMAIN}"
    result, err = receive(f"To: {to}\n\nunsubscribe\n".encode(), to)
    assert result["action"] == "ignored"
    assert err
    assert status_of(member)[0] == MemberStatus.ACTIVE


def test_a_message_for_someone_else_is_dropped(db):
    result, err = receive(b"To: postmaster@bageriet.dk\n\nhello\n", "postmaster@bageriet.dk")
    assert result["reason"] == "unknown recipient"
    assert err


def test_a_database_outage_defers_the_message(personas: Personas, monkeypatch):
    from django.db import OperationalError

    from campaigns.management.commands import mail_receive

    def down(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(mail_receive, "bounce_record", down)
    member = make_member(make_list(personas.account_a))
    to = f"bounces+{bounce_token(make_delivery(member).pk)}@{DOMAIN}"
    with pytest.raises(CommandError) as raised:
        receive(dsn(to, "5.1.1", "failed", "550 5.1.1 unknown"), to)
    assert raised.value.returncode == 75


def test_postfix_sees_exit_0_and_no_traceback_for_a_bad_token():
    """The real process, as Postfix's pipe runs it (the token fails before any query)."""
    to = f"bounces+AAAAAAAAAAAAAAAAAAAAAAAAAAAA@{DOMAIN}"
    done = subprocess.run(
        [sys.executable, "manage.py", "mail_receive", "--recipient", to],
        input=dsn(to, "5.1.1", "failed", "550 5.1.1 unknown"),
        capture_output=True,
        cwd=Path(settings.BASE_DIR),
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"not ours" in done.stderr
    assert b"Traceback" not in done.stderr
