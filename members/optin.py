"""Double opt-in: a signed confirmation link mailed to a new member of a list that asks
for it. Until the member clicks it, the member is unconfirmed and gets no campaigns.

Each member is mailed once: ``optin_sent_at`` is claimed by a conditional update before
the mail goes out, so a task delivered twice (or two workers on one import) mails nobody
twice. The price is the physical limit the other way round: a worker killed between the
claim and the relay's answer loses that one mail.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import get_connection
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from heyloyalty.mail import build_message
from members.models import Import, Member, MemberStatus, WebhookEvent
from members.webhook_delivery import webhooks_emit

log = logging.getLogger(__name__)

SALT = "members.optin"
MAX_AGE = 60 * 60 * 24 * 30  # a confirmation link works for 30 days
# Members mailed per task run of an import's confirmations; the task then queues the next
# run, so no run is long and a million new members never become a million tasks.
IMPORT_BATCH = 500
# The import's members are stamped with the worker's clock, the import with the web
# process's: hosts whose clocks differ by up to this much still find each other's rows.
CLOCK_SKEW = timedelta(minutes=10)


def optin_token(member: Member) -> str:
    return signing.dumps(str(member.pk), salt=SALT, compress=True)


def optin_url(member: Member) -> str:
    return settings.PUBLIC_URL + reverse("optin_confirm", args=[optin_token(member)])


def optin_send(*, member_id: str, smtp: Any = None) -> bool:
    """Mail the confirmation link once; False when there is nothing (left) to send.

    ``smtp`` is an open mail connection to reuse (a batch); None opens one per message.
    A transient failure releases the claim and raises, so a retry sends it; an address
    the relay refuses for good (5xx) stays claimed and is not tried again.
    """
    member = Member.objects.select_related("list__account").filter(pk=member_id).first()
    if member is None or member.status != MemberStatus.UNCONFIRMED or not member.email:
        return False
    claimed_at = timezone.now()
    claimed = Member.objects.filter(
        pk=member.pk, status=MemberStatus.UNCONFIRMED, optin_sent_at__isnull=True
    ).update(optin_sent_at=claimed_at)
    if not claimed:
        return False  # mailed already, or another worker is mailing it now
    try:
        _message(member, smtp).send()
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            log.warning("opt-in mail to member %s refused for good: %s", member.pk, codes)
            return False
        _release(member, claimed_at)
        raise
    except Exception:
        _release(member, claimed_at)
        raise
    return True


def _message(member: Member, smtp: Any) -> Any:
    member_list = member.list
    context = {"list": member_list, "account": member_list.account, "url": optin_url(member)}
    sender = member_list.account.default_from_email or settings.DEFAULT_FROM_EMAIL
    name = member_list.account.default_from_name
    message = build_message(
        to=[member.email],
        subject=render_to_string("members/optin_subject.txt", context).strip(),
        text=render_to_string("members/optin_email.txt", context),
        html=render_to_string("members/optin_email.html", context),
        from_email=f"{name} <{sender}>" if name else sender,
    )
    message.connection = smtp
    return message


def _release(member: Member, claimed_at: datetime) -> None:
    Member.objects.filter(pk=member.pk, optin_sent_at=claimed_at).update(optin_sent_at=None)


def optin_confirm(*, token: str) -> Member | None:
    """Confirm the member the token names; None for a bad or expired token.

    Confirming is when the member subscribes: the list's webhooks hear ``subscribe`` now,
    in the same transaction (members.services.member_create announces only members who
    need no confirmation). A second click finds the member active and emits nothing.
    """
    try:
        member_id = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature:
        return None
    with transaction.atomic():
        member = Member.objects.select_for_update().filter(pk=member_id).first()
        if member is None:
            return None
        if member.status == MemberStatus.UNCONFIRMED:
            member.status = member.email_status = MemberStatus.ACTIVE
            member.consent_at = timezone.now()
            member.consent_text = (member.consent_text + " (confirmed by email)").strip()
            member.save(update_fields=["status", "email_status", "consent_at", "consent_text"])
            webhooks_emit(
                member_list_id=member.list_id, event=WebhookEvent.SUBSCRIBE, members=[member]
            )
    return member


def optin_queue(member: Member) -> None:
    """Send after commit, from a worker: never mail inside a transaction."""
    if member.status != MemberStatus.UNCONFIRMED:
        return
    from members.tasks import send_optin

    member_id = str(member.pk)
    transaction.on_commit(lambda: send_optin.delay(member_id))


# An import's new members: the cursor is (created_at, id) of the last member looked at.
Cursor = tuple[str, str]
_START_ID = str(uuid.UUID(int=0))


def import_optins_send(
    *, import_id: int, after: Cursor | None = None, batch: int | None = None
) -> Cursor | None:
    """Mail the confirmation to the next ``batch`` members an import created unconfirmed
    (``trigger_optin`` into a double opt-in list). Returns where to go on from, or None
    when the import's members are all done.

    1. The members are those on the import's list, imported, unconfirmed, not yet mailed,
       and created since the import was queued (less CLOCK_SKEW). Older ones are not this
       import's to mail; those of another such import at the same time are mailed once
       all the same.
    2. They are read in (created_at, id) order from ``after`` on, through the partial index
       ``member_optin_pending``, so each batch costs the same however far along we are.
    3. One mail connection per batch; each member is claimed before its mail (optin_send).
    """
    job = Import.objects.filter(pk=import_id).first()
    if job is None or job.preview or not job.options.get("trigger_optin"):
        return None
    batch = batch or IMPORT_BATCH
    since = job.created_at - CLOCK_SKEW
    start = after or (since.isoformat(), _START_ID)
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT id, created_at FROM members_member
               WHERE list_id = %s AND status = %s AND optin_sent_at IS NULL AND imported
                 AND created_at >= %s AND (created_at, id) > (%s::timestamptz, %s::uuid)
               ORDER BY created_at, id
               LIMIT %s""",
            [job.list_id, MemberStatus.UNCONFIRMED, since, *start, batch],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    smtp = get_connection()
    smtp.open()
    try:
        for member_id, _ in rows:
            optin_send(member_id=str(member_id), smtp=smtp)
    finally:
        smtp.close()
    if len(rows) < batch:
        return None
    last_id, last_created = rows[-1]
    return (last_created.isoformat(), str(last_id))
