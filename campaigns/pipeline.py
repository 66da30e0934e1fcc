"""The sending pipeline: start, deliver, pause, resume, cancel, reap.

1. `campaign_start` checks the campaign and moves it to sending (or scheduled); after
   commit, `campaign_prepare` writes one Delivery row per recipient with INSERT … SELECT
   (unique per campaign and address), which fixes the recipient set: the first
   SEND_FIRST_CHUNK rows in one transaction, after which it queues SEND_PARALLELISM
   `deliver` tasks, then the rest in a second one (`recipients_pending` meanwhile: the
   senders wait for it when they run out of rows, and the campaign cannot end before).
2. `campaign_deliver` claims a batch of rows (FOR UPDATE SKIP LOCKED), renders each with
   the template compiled once per campaign and process, hands it to the relay over the
   process's open connection, and marks the rows as the relay answers. After about
   SEND_TASK_SECONDS it queues itself again at the back of the queue, so campaigns take
   turns; the last one out marks the campaign sent.
3. Pause and cancel are a status change; senders look at the status between messages and
   put the rows they had claimed back.
4. `campaigns_reap` (beat) puts back rows claimed by a worker that died, restarts a send
   that shows no sign of life or whose recipient set's writer died (it holds an advisory
   lock while it writes), and starts scheduled campaigns that are due.

A worker killed mid-send loses nothing: its claimed rows go back to the queue after the
lease. The messages it had handed to the relay but not yet marked (at most SEND_MARK_BATCH
per process, marked together to save a statement and a commit each) are sent again:
exactly-once over SMTP cannot be had, this is the bound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from campaigns.errors import CampaignError
from campaigns.message import build_mime, make_message_id
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Link,
)
from campaigns.templating import CompiledCampaign, TemplateError, compile_campaign
from campaigns.transport import Outcome, Outgoing, new_transport
from campaigns.values import ValueMaker, fallbacks
from members.models import List, Member, MemberStatus
from members.schema import ListSchema
from members.selectors import segment_members

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    recipients: int
    sent: int
    failed: int
    waiting: int  # queued or being sent
    percent: int  # (sent + failed) * 100 // recipients; 100 when finished


# Starting, stopping


def campaign_start(
    *, campaign: Campaign, at: datetime | None = None, user: User | None = None
) -> Campaign:
    """Send now (`at` None) or schedule for `at`; a time in the past is refused."""
    from campaigns.services import campaign_problems

    if campaign.status != CampaignStatus.DRAFT:
        raise CampaignError({"status": f"the campaign is {campaign.get_status_display()}"})
    if at is not None and at <= timezone.now():
        raise CampaignError({"scheduled_at": "is in the past"})
    problems = campaign_problems(campaign=campaign)
    if campaign.resend_of_id is not None:
        problems.pop("targets", None)  # its recipients are the original's undelivered
    if problems:
        raise CampaignError(problems)
    now = timezone.now()
    changes: dict[str, Any] = (
        {"status": CampaignStatus.SCHEDULED, "scheduled_at": at}
        if at is not None
        else {"status": CampaignStatus.SENDING, "started_at": now, "heartbeat_at": now}
    )
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DRAFT).update(
            **changes, updated_at=now
        ):
            raise CampaignError({"status": "the campaign was sent or scheduled already"})
        if at is None:
            _queue_prepare(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def campaign_unschedule(*, campaign: Campaign) -> Campaign:
    """A scheduled campaign back to a draft, to be changed or sent now."""
    if not Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SCHEDULED).update(
        status=CampaignStatus.DRAFT, scheduled_at=None, updated_at=timezone.now()
    ):
        raise CampaignError({"status": "only a scheduled campaign can be unscheduled"})
    campaign.refresh_from_db()
    return campaign


def _refuse_autoresponder_mail(campaign: Campaign) -> None:
    """An autoresponder's mail is run by its autoresponder: switch that off instead."""
    if campaign.kind == CampaignKind.AUTORESPONDER:
        raise CampaignError(
            {"status": "this is a mail of an autoresponder: pause or change the autoresponder"}
        )


def campaign_pause(*, campaign: Campaign) -> Campaign:
    _refuse_autoresponder_mail(campaign)
    if not Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.PAUSED, status_reason="", updated_at=timezone.now()
    ):
        raise CampaignError({"status": "only a campaign that is sending can be paused"})
    campaign.refresh_from_db()
    return campaign


def campaign_resume(*, campaign: Campaign) -> Campaign:
    _refuse_autoresponder_mail(campaign)
    now = timezone.now()
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.PAUSED).update(
            status=CampaignStatus.SENDING, status_reason="", heartbeat_at=now, updated_at=now
        ):
            raise CampaignError({"status": "only a paused campaign can be resumed"})
        campaign.refresh_from_db()
        if campaign.prepared_at is None:
            _queue_prepare(campaign.pk)
        else:  # a recipient set still being written: the reaper sees to its writer
            _queue_deliver(campaign.pk, settings.SEND_PARALLELISM)
    return campaign


def campaign_cancel(*, campaign: Campaign) -> Campaign:
    """Stop for good: whoever has not been sent the message is not sent it."""
    _refuse_autoresponder_mail(campaign)
    stoppable = [CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED]
    now = timezone.now()
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign.pk, status__in=stoppable).update(
            status=CampaignStatus.CANCELLED, finished_at=now, updated_at=now
        ):
            raise CampaignError({"status": "only a scheduled, sending or paused campaign"})
        Delivery.objects.filter(campaign_id=campaign.pk, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.CANCELLED, error="the campaign was cancelled"
        )
    campaign.refresh_from_db()
    return campaign


def campaign_resend(*, campaign: Campaign, user: User | None = None) -> Campaign:
    """A new draft copy aimed at the recipients of `campaign` who did not receive it."""
    if campaign.status not in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        raise CampaignError({"status": "only a finished campaign can be sent again"})
    from campaigns.services import campaign_duplicate

    with transaction.atomic():
        copy = campaign_duplicate(campaign=campaign, user=user)
        copy.name = (_("%(name)s (again)") % {"name": campaign.name})[:200]
        copy.resend_of = campaign
        copy.save(update_fields=["name", "resend_of"])
    return copy


# Preparing: the recipient set


def recipients_query(campaign: Campaign) -> QuerySet[Member]:
    """The members the campaign goes to: active on a target, not on an exclusion, one
    address once (the INSERT's ON CONFLICT keeps the first)."""
    targets = list(campaign.targets.select_related("segment"))
    include, exclude = Q(pk__in=[]), Q(pk__in=[])
    for target in targets:
        if target.list_id is not None:
            q = Q(list_id=target.list_id)
        else:
            segment = target.segment
            if segment is None:  # the check constraint: a list or a segment
                continue
            q = Q(pk__in=segment_members(segment=segment).values("pk"))
        if target.exclude:
            exclude |= q
        else:
            include |= q
    members = Member.objects.filter(list__account_id=campaign.account_id)
    if campaign.resend_of_id is not None:
        undelivered = Delivery.objects.filter(
            campaign_id=campaign.resend_of_id,
            status__in=[DeliveryStatus.FAILED, DeliveryStatus.CANCELLED, DeliveryStatus.QUEUED],
        ).values("member_id")
        include = Q(pk__in=undelivered)
    excluded = (
        Member.objects.filter(list__account_id=campaign.account_id)
        .filter(exclude | Q(email_status__in=[MemberStatus.BOUNCED, MemberStatus.COMPLAINED]))
        .annotate(address=Lower("email"))
        .values("address")
    )
    return (
        members.filter(include)
        .filter(status=MemberStatus.ACTIVE, email_status=MemberStatus.ACTIVE)
        .exclude(email="")
        .annotate(address=Lower("email"))
        .exclude(address__in=excluded)
    )


def _queue_prepare(campaign_id: int) -> None:
    from campaigns.tasks import prepare

    transaction.on_commit(lambda: prepare.delay(campaign_id))


def deliveries_added(*, campaign_id: int) -> None:
    """Rows were added to a sending campaign (an autoresponder step's trigger fired):
    queue senders after commit. Rows whose next_attempt_at lies ahead wait for it."""
    _queue_deliver(campaign_id, 1)


def _queue_deliver(campaign_id: int, count: int) -> None:
    from campaigns.tasks import deliver

    def queue() -> None:
        for _turn in range(count):
            deliver.delay(campaign_id)

    transaction.on_commit(queue)


INSERT_RECIPIENTS = """
INSERT INTO campaigns_delivery
    (campaign_id, member_id, email, occurrence, status, attempts, claimed_by, error)
SELECT %s, r.id, r.address, '', 'queued', 0, '', ''
FROM ({query}) AS r(id, address)
ON CONFLICT (campaign_id, email, occurrence) DO NOTHING
"""


def _insert_recipients(campaign: Campaign, limit: int | None = None) -> int:
    """Write Delivery rows for the recipients, in the order they joined their lists; the
    first `limit` of them, or all that are not written yet. Returns how many were new."""
    recipients = (
        recipients_query(campaign).order_by("list_id", "created_at").values_list("pk", "address")  # type: ignore[misc]  # annotated
    )
    if limit is not None:
        recipients = recipients[:limit]
    sql, params = recipients.query.sql_with_params()
    with connection.cursor() as cursor:
        # `sql` is the ORM's own, with every value a parameter.
        cursor.execute(INSERT_RECIPIENTS.format(query=sql), [campaign.pk, *params])
        return cursor.rowcount


def campaign_prepare(*, campaign_id: int) -> None:
    """Write the tracked links and the Delivery rows, once, and queue the senders.

    In two transactions, so the first message does not wait for the whole recipient set:
    the first SEND_FIRST_CHUNK recipients and the links, then the senders are queued, then
    the rest (`recipients_pending` meanwhile; the senders wait for it before the campaign
    can end). Both are idempotent: run again (the reaper, a redelivered task) they write
    only what is missing."""
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update().filter(pk=campaign_id).select_related().first()
        )
        if campaign is None or campaign.status != CampaignStatus.SENDING:
            return
        if campaign.prepared_at is None:
            try:
                compiled = compile_for(campaign)
            except TemplateError as error:
                _fail(campaign, f"The template could not be used: {error}")
                return
            first = _insert_recipients(campaign, limit=settings.SEND_FIRST_CHUNK)
            Link.objects.bulk_create(
                Link(campaign=campaign, position=position, url=url)
                for position, url in enumerate(compiled.links)
            )
            now = timezone.now()
            Campaign.objects.filter(pk=campaign.pk).update(
                prepared_at=now,
                heartbeat_at=now,
                recipients=first,
                recipients_pending=True,
                sent=0,
                failed=0,
            )
            campaign.recipients_pending = True
            _queue_deliver(campaign.pk, settings.SEND_PARALLELISM)
    if campaign.recipients_pending:
        _write_other_recipients(campaign)


# pg_try_advisory_xact_lock(WRITER_LOCK, campaign id) is held while the rest of a
# campaign's recipient set is written: the reaper knows by it whether a writer is alive.
WRITER_LOCK = 0x484C5253


def _writer_lock(campaign_id: int) -> bool:
    """Take the campaign's writer lock until the end of the transaction, if it is free."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [WRITER_LOCK, campaign_id])
        return bool(cursor.fetchone()[0])


def _write_other_recipients(campaign: Campaign) -> None:
    """The second transaction of campaign_prepare. It takes the campaign's row lock only at
    its end, so the senders (which update the campaign's counters) are not held up; the
    senders meanwhile send the first rows, then wait for these."""
    with transaction.atomic():
        if not _writer_lock(campaign.pk):
            return  # another process is writing them
        added = _insert_recipients(campaign)
        locked = Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        if locked is None:
            return
        # Two runs at once (a redelivered task) each count only the rows they wrote.
        Campaign.objects.filter(pk=campaign.pk).update(
            recipients=F("recipients") + added,
            recipients_pending=False,
            heartbeat_at=timezone.now(),
        )
        if locked.status == CampaignStatus.CANCELLED:  # cancelled while we wrote
            Delivery.objects.filter(campaign_id=campaign.pk, status=DeliveryStatus.QUEUED).update(
                status=DeliveryStatus.CANCELLED, error="the campaign was cancelled"
            )


def _fail(campaign: Campaign, reason: str) -> None:
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.FAILED, status_reason=reason, finished_at=now, updated_at=now
    )


# Compiling, once per campaign and process


def _target_lists(campaign: Campaign) -> list[List]:
    lists = {}
    for target in campaign.targets.select_related("list", "segment__list"):
        member_list = target.list if target.list is not None else target.segment.list  # type: ignore[union-attr]
        lists[member_list.pk] = member_list
    return list(lists.values())


def compile_for(campaign: Campaign) -> CompiledCampaign:
    schemas = [ListSchema.load(lst) for lst in _target_lists(campaign)]
    names = {name for schema in schemas for name in schema.fields} | {"email", "mobile"}
    return compile_campaign(
        subject=campaign.subject,
        preheader=campaign.preheader,
        html=campaign.html,
        text=campaign.text,
        field_names=names,
        fallbacks=fallbacks(schemas),
        tracking=campaign.tracking,
    )


def from_header(name: str, address: str) -> str:
    from email.headerregistry import Address

    return str(Address(display_name=name, addr_spec=address)) if name else address


def campaign_finish(*, campaign_id: int) -> bool:
    """Sent, with the counts taken from the rows, once nothing is left to send; then the
    members' `sent_mail` counters."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status != CampaignStatus.SENDING:
            return False
        if campaign.kind == CampaignKind.AUTORESPONDER:
            return False  # an autoresponder's step keeps sending while it is on
        if campaign.prepared_at is None or campaign.recipients_pending:
            return False  # the recipient set is still being written
        counts = _counts(campaign.pk)
        if counts.get(DeliveryStatus.QUEUED, 0) or counts.get(DeliveryStatus.SENDING, 0):
            return False
        now = timezone.now()
        Campaign.objects.filter(pk=campaign.pk).update(
            status=CampaignStatus.SENT,
            status_reason="",
            finished_at=now,
            updated_at=now,
            heartbeat_at=now,
            sent=counts.get(DeliveryStatus.SENT, 0),
            failed=counts.get(DeliveryStatus.FAILED, 0),
            sent_mail_pending=True,
        )
    campaign_count_sent_mail(campaign_id=campaign_id)
    return True


def campaign_count_sent_mail(*, campaign_id: int) -> bool:
    """Raise `sent_mail` of every member the sent campaign reached, once (the reaper
    finishes it if the process dies first)."""
    with transaction.atomic():
        if not Campaign.objects.filter(
            pk=campaign_id, status=CampaignStatus.SENT, sent_mail_pending=True
        ).update(sent_mail_pending=False):
            return False  # counted already, or by someone else right now
        with connection.cursor() as cursor:
            cursor.execute(
                """UPDATE members_member m SET sent_mail = m.sent_mail + 1
                   FROM campaigns_delivery d
                   WHERE d.campaign_id = %s AND d.status = 'sent' AND m.id = d.member_id""",
                [campaign_id],
            )
    return True


def _counts(campaign_id: int) -> dict[str, int]:
    rows = (
        Delivery.objects.filter(campaign_id=campaign_id)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return dict(rows)


def campaign_progress(*, campaign: Campaign) -> Progress:
    recipients = campaign.recipients
    sent, failed = campaign.sent, campaign.failed
    done = sent + failed
    if campaign.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        percent = 100
    elif campaign.prepared_at is None or campaign.recipients_pending or recipients == 0:
        percent = 0
    else:
        percent = min(99, done * 100 // recipients)
    waiting = max(0, recipients - done) if campaign.status != CampaignStatus.SENT else 0
    if campaign.status == CampaignStatus.CANCELLED:
        waiting = 0
    return Progress(recipients, sent, failed, waiting, percent)


# The reaper


def campaigns_reap() -> dict[str, int]:
    """Put back the rows of dead workers, restart stalled sends, start due ones."""
    now = timezone.now()
    lease = now - timedelta(seconds=settings.SEND_CLAIM_LEASE_SECONDS)
    stall = now - timedelta(seconds=settings.SEND_STALL_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE campaigns_delivery d
               SET status = CASE WHEN c.status = 'cancelled' THEN 'cancelled' ELSE 'queued' END,
                   claimed_by = ''
               FROM campaigns_campaign c
               WHERE c.id = d.campaign_id AND d.status = 'sending' AND d.claimed_at < %s""",
            [lease],
        )
        released = cursor.rowcount
    restarted = 0
    stalled = Campaign.objects.filter(status=CampaignStatus.SENDING).filter(
        Q(heartbeat_at__lt=stall) | Q(heartbeat_at__isnull=True)
    )
    for campaign in stalled:
        with transaction.atomic():
            if not Campaign.objects.filter(
                Q(heartbeat_at__lt=stall) | Q(heartbeat_at__isnull=True),
                pk=campaign.pk,
                status=CampaignStatus.SENDING,
            ).update(heartbeat_at=now):
                continue  # another reaper got there first
            restarted += 1
            if campaign.kind == CampaignKind.AUTORESPONDER:
                if _due(campaign.pk).exists():
                    _queue_deliver(campaign.pk, 1)
                continue
            if campaign.prepared_at is None:
                _queue_prepare(campaign.pk)
                continue
            if campaign.recipients_pending:  # its writer is restarted below
                _queue_deliver(campaign.pk, settings.SEND_PARALLELISM)
                continue
            counts = _counts(campaign.pk)
            Campaign.objects.filter(pk=campaign.pk).update(
                sent=counts.get(DeliveryStatus.SENT, 0),
                failed=counts.get(DeliveryStatus.FAILED, 0),
            )
            if counts.get(DeliveryStatus.QUEUED, 0) or counts.get(DeliveryStatus.SENDING, 0):
                _queue_deliver(campaign.pk, settings.SEND_PARALLELISM)
            else:
                _finish_after_commit(campaign.pk)
    for campaign_id in Campaign.objects.filter(
        status=CampaignStatus.SENDING, recipients_pending=True
    ).values_list("pk", flat=True):
        with transaction.atomic():
            if _writer_lock(campaign_id):  # nobody is writing the rest of its recipients
                restarted += 1
                _queue_prepare(campaign_id)
    uncounted = Campaign.objects.filter(
        status=CampaignStatus.SENT, sent_mail_pending=True, finished_at__lt=stall
    ).values_list("pk", flat=True)
    for campaign_id in uncounted:
        campaign_count_sent_mail(campaign_id=campaign_id)
    started = campaigns_start_due()
    return {"released": released, "restarted": restarted, "started": started}


def _due(campaign_id: int) -> QuerySet[Delivery]:
    return Delivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now()),
        campaign_id=campaign_id,
        status=DeliveryStatus.QUEUED,
    )


def _finish_after_commit(campaign_id: int) -> None:
    transaction.on_commit(lambda: campaign_finish(campaign_id=campaign_id))


def campaigns_start_due() -> int:
    now = timezone.now()
    started = 0
    for campaign_id in Campaign.objects.filter(
        status=CampaignStatus.SCHEDULED, scheduled_at__lte=now
    ).values_list("pk", flat=True):
        with transaction.atomic():
            if Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SCHEDULED).update(
                status=CampaignStatus.SENDING, started_at=now, heartbeat_at=now, updated_at=now
            ):
                started += 1
                _queue_prepare(campaign_id)
    return started


# Test sends


def campaign_send_test(*, campaign: Campaign, emails: list[str], member: Member | None) -> None:
    """The message as `member` (or with the fallbacks) to up to ten addresses, marked as a
    test, not counted anywhere. Raises CampaignError when the relay refuses it."""
    if not emails or len(emails) > 10:
        raise CampaignError({"emails": "give between one and ten addresses"})
    for address in emails:
        try:
            validate_email(address)
        except Exception as error:
            raise CampaignError({"emails": f"{address!r} is not an email address"}) from error
    try:
        compiled = compile_for(campaign)
    except TemplateError as error:
        raise CampaignError({error.part: error.message}) from error
    values: dict[str, str] = {}
    if member is not None:
        values = ValueMaker(ListSchema.load(member.list)).values(
            email=member.email, mobile=member.mobile, data=member.data
        )
    unsubscribe_url = f"{settings.PUBLIC_URL}/u/preview"
    rendered = compiled.render(values=values, delivery_id=None, unsubscribe_url=unsubscribe_url)
    transport = new_transport()
    sender = from_header(campaign.from_name, campaign.from_email)
    domain = campaign.from_email.rsplit("@", 1)[-1]
    try:
        for address in emails:
            subject = f"[Test] {rendered.subject}"
            message = Outgoing(
                envelope_from=campaign.from_email,
                to=address,
                from_header=sender,
                subject=subject,
                html=rendered.html,
                text=rendered.text,
                reply_to=campaign.reply_to,
            )
            if transport.wants_raw:
                message.raw = build_mime(
                    from_name=campaign.from_name,
                    from_email=campaign.from_email,
                    to=address,
                    subject=subject,
                    html=rendered.html,
                    text=rendered.text,
                    message_id=make_message_id(delivery_id=None, domain=domain),
                    reply_to=campaign.reply_to,
                )
            answer = transport.send(message)
            if answer.outcome is not Outcome.ACCEPTED:
                raise CampaignError({"emails": f"{address}: {answer.reason}"})
    finally:
        transport.close()
