"""Delivering one campaign: one turn of a `deliver` task (see campaigns/pipeline.py for
the whole picture).

A turn claims a batch of rows (FOR UPDATE SKIP LOCKED), renders each with the template
compiled once per campaign and process, hands it to the relay over the process's open
connection and marks the rows as the relay answers (SEND_MARK_BATCH at a time). After
about SEND_TASK_SECONDS it queues the next turn at the back of the queue, so campaigns
and accounts take turns;
the last turn marks the campaign sent. Between messages it looks at the campaign's status
a few times a second, and on pause or cancel puts back the rows it had claimed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from campaigns import tokens
from campaigns.message import build_mime, dkim_sign, make_message_id
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Delivery, DeliveryStatus
from campaigns.pipeline import campaign_finish, compile_for, from_header
from campaigns.templating import CompiledCampaign
from campaigns.transport import Answer, Outcome, Outgoing, shared_transport
from campaigns.values import ValueMaker
from members.models import SUPPRESSED, List, MemberStatus
from members.schema import ListSchema
from members.webhook_delivery import SentEvents

log = logging.getLogger(__name__)

# How often a sender that ran out of rows looks again while the recipient set is written.
WAIT_FOR_RECIPIENTS_SECONDS = 0.2
# Accepted messages wait at most this long (or for SEND_MARK_BATCH of them) to be marked.
MARK_SECONDS = 0.05


@dataclass
class _Compiled:
    version: datetime | None
    template: CompiledCampaign
    from_header: str
    domain: str


_compiled: dict[int, _Compiled] = {}


def _compiled_for(campaign: Campaign) -> _Compiled:
    kept = _compiled.get(campaign.pk)
    if kept is not None and kept.version == campaign.prepared_at:
        return kept
    if len(_compiled) > 100:
        _compiled.clear()
    domain = campaign.from_email.rsplit("@", 1)[-1]
    kept = _Compiled(
        version=campaign.prepared_at,
        template=compile_for(campaign),
        from_header=from_header(campaign.from_name, campaign.from_email),
        domain=domain,
    )
    _compiled[campaign.pk] = kept
    return kept


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


@dataclass
class _Row:
    delivery_id: int
    email: str
    attempts: int
    member_id: Any
    list_id: int | None
    member_email: str
    mobile: str
    data: dict[str, Any]
    status: str
    email_status: str


CLAIM_SQL = """
WITH claimed AS (
    UPDATE campaigns_delivery d
    SET status = 'sending', claimed_by = %(worker)s, claimed_at = now(),
        attempts = d.attempts + 1
    WHERE d.id IN (
        SELECT id FROM campaigns_delivery
        WHERE campaign_id = %(campaign)s AND status = 'queued'
          AND (next_attempt_at IS NULL OR next_attempt_at <= now())
        ORDER BY id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.email, d.attempts, d.member_id
)
SELECT c.id, c.email, c.attempts, c.member_id, m.list_id, m.email, m.mobile, m.data,
       m.status, m.email_status
FROM claimed c LEFT JOIN members_member m ON m.id = c.member_id
ORDER BY c.id
"""


def _claim(campaign_id: int, worker: str, limit: int) -> list[_Row]:
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, {"worker": worker, "campaign": campaign_id, "limit": limit})
        rows = [_Row(*row) for row in cursor.fetchall()]
    for row in rows:
        if isinstance(row.data, str):  # Django leaves jsonb undecoded on a raw cursor
            row.data = json.loads(row.data)
    return rows


class _Stop(Exception):
    """The campaign is no longer sending: put the rest back and leave."""


class _Sender:
    """Sends the rows of one campaign from one task."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.compiled = _compiled_for(campaign)
        self.transport = shared_transport()
        self.makers: dict[int, ValueMaker] = {}
        self.sent = 0
        self.failed = 0
        self.failures_in_row = 0
        self.status_checked = time.monotonic()
        self.rate = _RateLimiter(campaign.account_id)
        self.public_url = settings.PUBLIC_URL
        self.bounce_domain = getattr(settings, "BOUNCE_DOMAIN", "") or self.compiled.domain
        self.goodbye = _is_goodbye(campaign)
        self.autoresponder = campaign.kind == CampaignKind.AUTORESPONDER
        # Accepted by the relay, not yet marked sent: SEND_MARK_BATCH at most.
        self.accepted: list[int] = []
        self.accepted_since = 0.0
        self.mark_batch = max(1, settings.SEND_MARK_BATCH)
        self.sent_events = SentEvents(account_id=campaign.account_id, campaign_id=campaign.pk)

    def may_mail(self, row: _Row) -> bool:
        """Active members only; an "unsubscribed" autoresponder's goodbye also goes to
        the member who just left. Bounced and complained never."""
        if row.email_status in (MemberStatus.BOUNCED, MemberStatus.COMPLAINED):
            return False
        if self.goodbye:
            return row.status in (MemberStatus.ACTIVE, MemberStatus.UNSUBSCRIBED)
        return row.status == MemberStatus.ACTIVE and row.email_status not in SUPPRESSED

    def maker(self, list_id: int) -> ValueMaker:
        maker = self.makers.get(list_id)
        if maker is None:
            maker = self.makers[list_id] = ValueMaker(ListSchema.load(List.objects.get(pk=list_id)))
        return maker

    def check_status(self, *, now_please: bool = False) -> None:
        """Between messages, a few times a second, and before the first of each batch:
        pause and cancel act within that, and rows claimed after a pause are never sent."""
        now = time.monotonic()
        if not now_please and now - self.status_checked < 0.2:
            return
        self.status_checked = now
        status = (
            Campaign.objects.filter(pk=self.campaign.pk).values_list("status", flat=True).first()
        )
        if status != CampaignStatus.SENDING:
            raise _Stop

    def outgoing(self, row: _Row) -> Outgoing:
        campaign = self.campaign
        values = self.maker(row.list_id or 0).values(
            email=row.member_email, mobile=row.mobile, data=row.data or {}
        )
        unsubscribe = tokens.unsubscribe_token(row.member_id, campaign.pk)
        unsubscribe_url = f"{self.public_url}/u/{unsubscribe}"
        rendered = self.compiled.template.render(
            values=values, delivery_id=row.delivery_id, unsubscribe_url=unsubscribe_url
        )
        headers = [
            (
                "List-Unsubscribe",
                f"<{unsubscribe_url}>, "
                f"<mailto:unsubscribe+{unsubscribe}@{self.bounce_domain}?subject=unsubscribe>",
            ),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("X-Campaign", str(campaign.pk)),
        ]
        message = Outgoing(
            envelope_from=f"bounces+{tokens.bounce_token(row.delivery_id)}@{self.bounce_domain}",
            to=row.email,
            from_header=self.compiled.from_header,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            reply_to=campaign.reply_to,
            headers=headers,
            delivery_id=row.delivery_id,
        )
        if self.transport.wants_raw:
            message.raw = dkim_sign(
                build_mime(
                    from_name=campaign.from_name,
                    from_email=campaign.from_email,
                    to=row.email,
                    subject=rendered.subject,
                    html=rendered.html,
                    text=rendered.text,
                    message_id=make_message_id(
                        delivery_id=row.delivery_id, domain=self.compiled.domain
                    ),
                    reply_to=campaign.reply_to,
                    headers=headers,
                )
            )
        return message

    def send_rows(self, rows: list[_Row]) -> None:
        """Each row marked as the relay answers for it (the accepted ones a few at a time:
        SEND_MARK_BATCH or MARK_SECONDS, whichever comes first); the batch's 'sent' webhook
        events, if a list wants them, written together at the end."""
        self.sent_events.batch_start()  # from memory (a query every few seconds at most)
        try:
            self._send_rows(rows)
        finally:
            if self.sent_events.rows:
                self.sent_events.flush()

    def _send_rows(self, rows: list[_Row]) -> None:
        for index, row in enumerate(rows):
            try:
                self.check_status(now_please=index == 0)
                if row.list_id is None or not self.may_mail(row):
                    _mark(row, DeliveryStatus.CANCELLED, "the member left the list before sending")
                    continue
                self.rate.take()
                answer = self.transport.send(self.outgoing(row))
            except BaseException:
                self.leave(rows[index:])
                raise
            if answer.outcome is Outcome.RELAY_DOWN:
                self.leave(rows[index:])
                raise _RelayDown(answer.reason)
            try:
                self.record(row, answer)
            except BaseException:
                self.leave(rows[index + 1 :])
                raise
        self.flush_marks()

    def leave(self, unsent: list[_Row]) -> None:
        """Stopping in the middle of a batch: mark what went out, put back what did not."""
        try:
            self.flush_marks()
        finally:
            _release(unsent)

    def flush_marks(self) -> None:
        if self.accepted:
            accepted, self.accepted = self.accepted, []
            _mark_sent(accepted, count=self.autoresponder)

    def record(self, row: _Row, answer: Answer) -> None:
        if answer.outcome is Outcome.ACCEPTED:
            if not self.accepted:
                self.accepted_since = time.monotonic()
            self.accepted.append(row.delivery_id)
            if (
                len(self.accepted) >= self.mark_batch
                or time.monotonic() - self.accepted_since >= MARK_SECONDS
            ):
                self.flush_marks()
            if row.list_id in self.sent_events.lists:  # a 'sent' webhook: usually none
                self.sent_events.rows.append(row)
            self.sent += 1
            self.failures_in_row = 0
            return
        self.failures_in_row += 1
        if answer.outcome is Outcome.REFUSED:
            _mark(row, DeliveryStatus.FAILED, answer.reason)
            self.failed += 1
            _hard_bounce(self.campaign, row, answer.reason)
        else:  # deferred
            delays = settings.SEND_RETRY_DELAYS
            if row.attempts > len(delays):
                _mark(
                    row,
                    DeliveryStatus.FAILED,
                    f"gave up after {row.attempts} tries: {answer.reason}",
                )
                self.failed += 1
            else:
                _defer(row, delays[row.attempts - 1], answer.reason)
        if self.failures_in_row >= settings.SEND_FAILURES_IN_ROW:
            _pause_for_failures(self.campaign, self.failures_in_row, answer.reason)
            raise _Stop


def _is_goodbye(campaign: Campaign) -> bool:
    """The step of an autoresponder that answers an unsubscribe."""
    if campaign.kind != CampaignKind.AUTORESPONDER:
        return False
    from campaigns.models_autoresponders import AutoresponderStep, TriggerKind

    return AutoresponderStep.objects.filter(
        campaign=campaign, autoresponder__trigger=TriggerKind.UNSUBSCRIBED
    ).exists()


class _RelayDown(Exception):
    pass


def _mark(row: _Row, status: str, error: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_delivery SET status = %s, error = %s, claimed_by = '' WHERE id = %s",
            [status, error, row.delivery_id],
        )


MARK_SENT_SQL = (
    "UPDATE campaigns_delivery SET status = 'sent', error = '', claimed_by = '', "
    "sent_at = now() WHERE id = ANY(%s)"
)
# An autoresponder's step never finishes as a campaign does (whose finish counts its
# recipients' `sent_mail` at once), so each of its messages counts as it is marked.
MARK_SENT_AND_COUNT_SQL = f"""
WITH marked AS ({MARK_SENT_SQL} RETURNING member_id)
UPDATE members_member m SET sent_mail = m.sent_mail + 1
FROM marked WHERE m.id = marked.member_id
"""  # noqa: S608 - constant SQL  # nosec B608


def _mark_sent(delivery_ids: list[int], *, count: bool = False) -> None:
    """One statement for the messages the relay accepted since the last one."""
    with connection.cursor() as cursor:
        cursor.execute(MARK_SENT_AND_COUNT_SQL if count else MARK_SENT_SQL, [delivery_ids])


def _defer(row: _Row, seconds: int, reason: str) -> None:
    Delivery.objects.filter(pk=row.delivery_id).update(
        status=DeliveryStatus.QUEUED,
        claimed_by="",
        next_attempt_at=timezone.now() + timedelta(seconds=seconds),
        error=reason,
    )


def _release(rows: list[_Row]) -> None:
    """Rows claimed but not sent go back as they were (the try did not count); for a
    cancelled campaign they are not sent at all."""
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE campaigns_delivery d
               SET status = CASE WHEN c.status = 'cancelled' THEN 'cancelled' ELSE 'queued' END,
                   claimed_by = '', attempts = greatest(d.attempts - 1, 0)
               FROM campaigns_campaign c
               WHERE c.id = d.campaign_id AND d.id = ANY(%s) AND d.status = 'sending'""",
            [[row.delivery_id for row in rows]],
        )


def _hard_bounce(campaign: Campaign, row: _Row, reason: str) -> None:
    from campaigns.bounces import bounce_record
    from campaigns.models import BounceKind

    bounce_record(
        account=campaign.account,
        email=row.email,
        kind=BounceKind.HARD,
        source="smtp",
        reason=reason,
        delivery=Delivery.objects.filter(pk=row.delivery_id).first(),
        campaign=campaign,
    )


def _pause_for_failures(campaign: Campaign, count: int, reason: str) -> None:
    note = f"Paused after {count} recipients in a row were refused. The last answer: {reason}"
    if Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.PAUSED, status_reason=note, updated_at=timezone.now()
    ):
        from campaigns.tasks import notify_paused

        notify_paused.delay(campaign.pk)


class _RateLimiter:
    """Messages per second per account and for the relay, in one-second windows in Redis
    shared by every worker; tokens taken ten at a time."""

    CHUNK = 10

    def __init__(self, account_id: int) -> None:
        self.limits = [
            (f"send-rate:account:{account_id}", settings.SEND_RATE_PER_ACCOUNT),
            ("send-rate:relay", settings.SEND_RATE_RELAY),
        ]
        self.limits = [(key, rate) for key, rate in self.limits if rate > 0]
        self.tokens = 0

    def take(self) -> None:
        if not self.limits:
            return
        if self.tokens > 0:
            self.tokens -= 1
            return
        from heyloyalty.redis_client import redis_client

        client = redis_client()
        while True:
            second = int(time.time())
            ok = True
            for key, rate in self.limits:
                window = f"{key}:{second}"
                used = client.incrby(window, self.CHUNK)
                client.expire(window, 5)
                if used > rate + self.CHUNK - 1:
                    ok = False
            if ok:
                self.tokens = self.CHUNK - 1
                return
            time.sleep(max(0.01, second + 1 - time.time()))


def campaign_deliver(*, campaign_id: int) -> None:
    """One turn of sending for one campaign (see the module's docstring)."""
    campaign = Campaign.objects.select_related("account").filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return
    if campaign.prepared_at is None:
        return  # campaign_prepare queues the senders when it is done
    sender = _Sender(campaign)
    worker = _worker_name()
    deadline = time.monotonic() + settings.SEND_TASK_SECONDS
    relay_down = ""
    with connection.cursor() as cursor:
        # The sent marks are many small commits; a database crash (not a worker's) may
        # lose the last fraction of a second of them, and those messages go out again.
        cursor.execute("SET synchronous_commit TO off")
    try:
        while time.monotonic() < deadline:
            rows = _claim(campaign.pk, worker, settings.SEND_BATCH_SIZE)
            if not rows:
                break
            sender.send_rows(rows)
    except _Stop:
        return _counted(campaign, sender)
    except _RelayDown as error:
        relay_down = str(error)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")
    _counted(campaign, sender)
    if relay_down:
        _wait_for_relay(campaign, relay_down)
        return
    _next_turn(campaign)


def _counted(campaign: Campaign, sender: _Sender) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(
        sent=F("sent") + sender.sent,
        failed=F("failed") + sender.failed,
        heartbeat_at=timezone.now(),
    )


def _wait_for_relay(campaign: Campaign, reason: str) -> None:
    """Nothing was lost; try again shortly, and keep the reaper from piling on."""
    from campaigns.tasks import deliver

    log.warning("campaign %s: relay unavailable, retrying: %s", campaign.pk, reason)
    Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).update(
        status_reason=f"Waiting for the mail relay: {reason}", heartbeat_at=timezone.now()
    )
    deliver.apply_async((campaign.pk,), countdown=5)


def _next_turn(campaign: Campaign) -> None:
    """Queue the next turn, wait for retries that are due later, or finish."""
    from campaigns.tasks import deliver

    # Read before the rows: once it is False, every row is committed and visible below.
    writing = Campaign.objects.filter(pk=campaign.pk, recipients_pending=True).exists()
    pending = Delivery.objects.filter(
        campaign_id=campaign.pk, status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING]
    )
    now = timezone.now()
    if (
        pending.filter(status=DeliveryStatus.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .exists()
    ):
        deliver.delay(campaign.pk)
        return
    if campaign.kind == CampaignKind.AUTORESPONDER:
        return  # rows due later are picked up by the trigger job (deliveries_added)
    if writing:  # the first rows are sent; the rest of the recipient set is on its way
        deliver.apply_async((campaign.pk,), countdown=WAIT_FOR_RECIPIENTS_SECONDS)
        return
    later = (
        pending.filter(status=DeliveryStatus.QUEUED)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if later is not None:
        wait = max(1, min(60, int((later - now).total_seconds()) + 1))
        deliver.apply_async((campaign.pk,), countdown=wait)
        return
    if not pending.exists():
        campaign_finish(campaign_id=campaign.pk)
