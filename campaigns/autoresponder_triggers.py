"""Evaluating autoresponders: once a minute (beat) each active autoresponder's trigger
becomes Delivery rows of its steps, which the sending pipeline then sends when due.

1. ``autoresponders_evaluate`` takes the active autoresponders one at a time, each in its
   own transaction with its row locked (FOR UPDATE SKIP LOCKED: an evaluation running at
   the same moment leaves it to the one that has it).
2. The first step: one INSERT … SELECT … ON CONFLICT DO NOTHING of the members the
   trigger finds (``_source``), each with the occurrence its mail answers (the
   member's signup, a year's birthday, one field change…), due at the trigger's time plus
   the step's delay, moved into the send window. Block time and cap are conditions of
   the same statement, and at most one new mail per member per evaluation.
3. Each later step: the previous step's deliveries sent since the last look, due at their
   ``sent_at`` plus the step's delay, the same way.
4. The mark (``evaluated_at``) moves to now. After commit, senders are queued for the
   steps that have rows due (``pipeline.deliveries_added``); rows due later are woken
   by a later evaluation (or the reaper).

Exactly once per member, step and occurrence is the unique constraint's promise
(campaign, email, occurrence); the statements here only avoid asking it needlessly.
Evaluating twice, concurrently, or late is therefore harmless: the time windows look
back ``LOOKBACK`` before the mark, because a row stamped with a time commits later than
that time (an import's members carry the time its merge began), and what was found
before is found again and skipped.
"""

# The SQL below is put together from fragments of our own (the trigger's query, the send
# window's CASE, the block and cap conditions); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import logging
import math
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.autoresponder_events import field_changes_prune
from campaigns.models import Campaign, CampaignStatus
from campaigns.models_autoresponders import (
    Autoresponder,
    AutoresponderStep,
    DateDirection,
    FieldChangeKind,
    TriggerKind,
)
from campaigns.models_tracking import TrackingKind
from campaigns.pipeline import deliveries_added
from members.models import FieldFormat

log = logging.getLogger(__name__)

# How far before the mark each evaluation looks again (the module docstring).
LOOKBACK = timedelta(minutes=30)
# A double opt-in member counts as subscribed when confirming, up to the link's lifetime
# (members.optin.MAX_AGE) after signing up.
OPTIN_LOOKBACK = timedelta(days=31)
# Recorded field changes are read by the evaluations of the next LOOKBACK only.
CHANGES_KEPT = timedelta(days=1)
# Delivery.sent_at is the database's clock, a campaign's finished_at a worker's.
_CLOCKS = timedelta(minutes=5)

# Statuses of a delivery that count as "mailed" for block time and cap.
_MAILED = "('queued', 'sending', 'sent')"
_RECEIVING = "m.status = 'active' AND m.email_status = 'active'"
_UNSUBSCRIBED = "m.status = 'unsubscribed' AND m.email_status = 'unsubscribed'"

# How a yes/no value is written for "changes to the value"; stored values are JSON booleans.
BOOLEAN_TEXT = {"1": "true", "true": "true", "yes": "true", "0": "false", "false": "false"}

_COLUMNS = """(campaign_id, member_id, email, occurrence, status, attempts, claimed_by, error,
               next_attempt_at)"""


@dataclass
class _Run:
    autoresponder: Autoresponder
    steps: list[AutoresponderStep]
    now: datetime
    since: datetime  # the first step: events after this
    follow_since: datetime  # later steps: previous deliveries sent after this
    zone: str
    today: date  # in the list's time zone

    def params(self) -> dict[str, Any]:
        ar = self.autoresponder
        return {
            "now": self.now,
            "since": self.since,
            "list": ar.list_id,
            "account": ar.account_id,
            "tz": self.zone,
            "wstart": ar.window_start_hour,
            "wend": ar.window_end_hour,
        }


def autoresponders_evaluate(*, now: datetime | None = None) -> dict[int, int]:
    """Evaluate every active autoresponder; the rows written per autoresponder id."""
    now = now or timezone.now()
    counts: dict[int, int] = {}
    for pk in Autoresponder.objects.filter(active=True).order_by("pk").values_list("pk", flat=True):
        try:
            written = autoresponder_evaluate(autoresponder_id=pk, now=now)
        except Exception:
            # One broken autoresponder must not hold up the others; the next minute tries
            # it again, and the log says why.
            log.exception("autoresponder %s: evaluation failed", pk)
            continue
        if written is not None:
            counts[pk] = written
    field_changes_prune(before=now - CHANGES_KEPT)
    return counts


def autoresponder_evaluate(*, autoresponder_id: int, now: datetime) -> int | None:
    """One autoresponder (the module docstring); None when it is off or being evaluated."""
    with transaction.atomic():
        ar = (
            Autoresponder.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("list")
            .filter(pk=autoresponder_id, active=True)
            .first()
        )
        if ar is None:
            return None
        run = _run(ar, now)
        written: dict[int, int] = {}
        steps = [s for s in run.steps if s.campaign.status == CampaignStatus.SENDING]
        fired = bool(steps) and steps[0].position == run.steps[0].position
        if fired:
            written[steps[0].campaign_id] = _fire(run, steps[0])
        for previous, step in zip(run.steps, run.steps[1:], strict=False):
            if step in steps and previous.campaign.status == CampaignStatus.SENDING:
                written[step.campaign_id] = _follow(run, previous, step)
        Autoresponder.objects.filter(
            Q(evaluated_at__isnull=True) | Q(evaluated_at__lt=now), pk=ar.pk
        ).update(evaluated_at=now)
        if fired and ar.trigger == TriggerKind.DATE and ar.date_checked != run.today:
            Autoresponder.objects.filter(pk=ar.pk).update(date_checked=run.today)
        _wake_senders(steps, written, now)
    return sum(written.values())


def _run(ar: Autoresponder, now: datetime) -> _Run:
    mark = ar.evaluated_at or ar.activated_at or now
    activated = ar.activated_at or mark
    zone = ar.list.timezone
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = settings.TIME_ZONE
    return _Run(
        autoresponder=ar,
        steps=list(ar.steps.select_related("campaign").order_by("position")),
        now=now,
        since=max(activated, mark - LOOKBACK),
        follow_since=mark - LOOKBACK,
        zone=zone,
        today=now.astimezone(zoneinfo.ZoneInfo(zone)).date(),
    )


# -- when a mail is due --------------------------------------------------------------------


def _due(run: _Run, moment: str) -> str:
    """SQL for ``moment`` plus the step's delay (``%(delay)s`` minutes), moved to the next
    opening of the send window (hours in the list's time zone) when it falls outside."""
    due = f"({moment} + make_interval(mins => %(delay)s))"
    ar = run.autoresponder
    start, end = ar.window_start_hour, ar.window_end_hour
    if start is None or end is None or start == end % 24:
        return due
    local = f"({due} AT TIME ZONE %(tz)s)"
    hour = f"extract(hour FROM {local})"
    opening = f"date_trunc('day', {local}) + make_interval(hours => %(wstart)s)"
    today = f"(({opening}) AT TIME ZONE %(tz)s)"
    tomorrow = f"(({opening} + interval '1 day') AT TIME ZONE %(tz)s)"
    if start < end:  # 9 to 17: before 9 waits for 9, from 17 for 9 tomorrow
        return (
            f"CASE WHEN {hour} < %(wstart)s THEN {today} "
            f"WHEN {hour} >= %(wend)s THEN {tomorrow} ELSE {due} END"
        )
    # 22 to 6, over midnight: from 6 until 22 it waits for 22 the same day.
    return f"CASE WHEN {hour} >= %(wend)s AND {hour} < %(wstart)s THEN {today} ELSE {due} END"


# -- the first step ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where a trigger finds its members: a FROM clause that names the member ``m``, a
    condition, and SQL for each row's occurrence and the time the trigger fired."""

    tables: str
    where: str
    occurrence: str
    at: str


def _fire(run: _Run, step: AutoresponderStep) -> int:
    """The first step's rows. The members who have this occurrence's mail already are
    left out first, behind an optimisation fence (OFFSET 0): on every minute but the
    first that finds them, that is all of them, and the dearer checks (a dead address
    elsewhere in the account, block time, cap) then look at nobody."""
    ar = run.autoresponder
    params = run.params()
    source = _source(run, params)
    if source is None:
        return 0
    member_state = _UNSUBSCRIBED if ar.trigger == TriggerKind.UNSUBSCRIBED else _RECEIVING
    limits = ""
    if ar.block_days:
        # No mail of this autoresponder waiting, or sent within the block time.
        limits += f"""
          AND NOT EXISTS (
              SELECT 1 FROM campaigns_delivery b
              WHERE b.member_id = f.id AND b.campaign_id = ANY(%(step_campaigns)s)
                AND b.status IN {_MAILED}
                AND (b.status <> 'sent'
                     OR b.sent_at > %(now)s - make_interval(days => %(block)s)))"""  # nosec B608  # constant SQL, values bound
    if ar.cap_per_member:
        limits += f"""
          AND (SELECT count(*) FROM campaigns_delivery k
               WHERE k.member_id = f.id AND k.campaign_id = %(campaign)s
                 AND k.status IN {_MAILED}) < %(cap)s"""  # nosec B608  # constant SQL, values bound
    sql = f"""
        INSERT INTO campaigns_delivery {_COLUMNS}
        SELECT DISTINCT ON (f.id) %(campaign)s, f.id, f.address, f.occurrence, 'queued', 0,
               '', '', {_due(run, "f.at")}
        FROM (
            SELECT m.id, m.email, lower(m.email) AS address,
                   {source.occurrence} AS occurrence, {source.at} AS at
            FROM {source.tables}
            WHERE {source.where}
              AND m.list_id = %(list)s AND m.email <> '' AND m.obscured_at IS NULL
              AND {member_state}
              AND NOT EXISTS (
                  SELECT 1 FROM campaigns_delivery x
                  WHERE x.campaign_id = %(campaign)s AND x.email = lower(m.email)
                    AND x.occurrence = {source.occurrence})
            OFFSET 0
        ) f
        WHERE NOT EXISTS (
              SELECT 1 FROM members_member s JOIN members_list sl ON sl.id = s.list_id
              WHERE sl.account_id = %(account)s AND s.email = f.email
                AND s.email_status IN ('bounced', 'complained')){limits}
        ORDER BY f.id, f.at, f.occurrence
        ON CONFLICT (campaign_id, email, occurrence) DO NOTHING"""  # nosec B608  # our own fragments, values bound
    params.update(
        campaign=step.campaign_id,
        delay=step.delay_minutes,
        step_campaigns=[s.campaign_id for s in run.steps],
        block=ar.block_days,
        cap=ar.cap_per_member,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _source(run: _Run, params: dict[str, Any]) -> _Source | None:
    """The trigger's _Source, its parameters added to ``params``; None when the trigger
    cannot fire (not set up)."""
    ar = run.autoresponder
    if ar.trigger == TriggerKind.SUBSCRIBED:
        return _subscribed(run, params)
    if ar.trigger == TriggerKind.UNSUBSCRIBED:
        return _unsubscribed()
    if ar.trigger == TriggerKind.DATE and ar.field_name:
        return _date(run, params)
    if ar.trigger == TriggerKind.FIELD_CHANGED and ar.field_name:
        return _field_changed(ar, params)
    if ar.trigger in (TriggerKind.OPENED, TriggerKind.CLICKED) and ar.trigger_campaign_id:
        return _opened(ar, params)
    if ar.trigger == TriggerKind.NOT_OPENED and ar.trigger_campaign_id and ar.days:
        return _not_opened(run, params)
    return None


def _subscribed(run: _Run, params: dict[str, Any]) -> _Source:
    """New members, counted from when they gave consent: signing up, or confirming by
    email on a double opt-in list. An import's members count only when it asked. One
    mail per member (the occurrence is the member's id)."""
    optin = OPTIN_LOOKBACK if run.autoresponder.list.double_optin else timedelta(0)
    params["created_since"] = run.since - optin
    joined = "greatest(m.created_at, coalesce(m.consent_at, m.created_at))"
    return _Source(
        tables="members_member m",
        where=f"""m.created_at > %(created_since)s AND m.created_at <= %(now)s
              AND {joined} > %(since)s
              AND (NOT m.imported OR EXISTS (
                  SELECT 1 FROM campaigns_importtrigger t
                  WHERE t.list_id = m.list_id AND t.members_created_at = m.created_at))""",  # nosec B608  # our own fragment, values bound
        occurrence="m.id::text",
        at=joined,
    )


def _unsubscribed() -> _Source:
    """Each Unsubscribe row of the list (every way of leaving writes one), for a member
    still unsubscribed (not bounced or complained).

    Known gap: the sender (campaigns/sending.py, ``_Sender.send_rows``) cancels a row
    whose member is not active, so this goodbye mail is written once and then ends
    "cancelled" until the sender lets an unsubscribed member have a mail of this trigger.
    """
    return _Source(
        tables="campaigns_unsubscribe u JOIN members_member m ON m.id = u.member_id",
        where="""u.list_id = %(list)s
              AND u.created_at > %(since)s AND u.created_at <= %(now)s""",
        occurrence="'unsubscribed:' || u.id",
        at="u.created_at",
    )


def date_target(*, today: date, direction: str, days: int) -> date:
    """The date a member's field must hold (or, yearly, fall on) for the mail to go today."""
    if direction == DateDirection.BEFORE:
        return today + timedelta(days=days)
    if direction == DateDirection.AFTER:
        return today - timedelta(days=days)
    return today


def month_days(target: date) -> list[str]:
    """The "MM-DD" of the dates whose anniversary falls on ``target``: 29 February's
    falls on 28 February in the years without one."""
    found = [target.strftime("%m-%d")]
    if found[0] == "02-28" and not _leap(target.year):
        found.append("02-29")
    return found


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _date(run: _Run, params: dict[str, Any]) -> _Source:
    """Members whose date field matches today (in the list's time zone). A field that is
    empty or not a date matches nothing: text is compared, never cast.

    The first evaluation of the day looks at every member of the list. The others that
    day look only at members created, changed or confirmed since the last look (minus
    LOOKBACK): a member who newly matches (a date entered, a confirmation, a return to
    the list) was written so by a path that stamps ``updated_at`` or ``consent_at``. That
    spares each minute the list's dates, and the members that had their mail already.
    """
    ar = run.autoresponder
    target = date_target(today=run.today, direction=ar.date_direction, days=ar.days)
    params["field"] = ar.field_name
    changed = ""
    if ar.date_checked == run.today:
        changed = "AND (m.updated_at > %(changed_since)s OR m.consent_at > %(changed_since)s)"
        params["changed_since"] = run.follow_since
    if ar.yearly:
        # The occurrence is the anniversary's year: one mail a year, also "7 days before"
        # a birthday early in January.
        params.update(
            occurrence=str(target.year), year=f"{target.year:04d}", month_days=month_days(target)
        )
        where = r"""substr(m.data ->> %(field)s, 6, 5) = ANY(%(month_days)s)
              AND m.data ->> %(field)s ~ '^\d{4}-\d\d-\d\d'
              AND left(m.data ->> %(field)s, 4) < %(year)s"""
        return _Source(
            "members_member m", f"{where} {changed}", "%(occurrence)s::text", "%(now)s::timestamptz"
        )
    params["date"] = target.isoformat()
    return _Source(
        "members_member m",
        f"left(m.data ->> %(field)s, 10) = %(date)s {changed}",
        "%(date)s::text",
        "%(now)s::timestamptz",
    )


def _number(column: str) -> str:
    return f"CASE WHEN jsonb_typeof({column}) = 'number' THEN ({column} #>> '{{}}')::numeric END"


def comparable_value(ar: Autoresponder) -> str:
    """The value a "changes to" trigger compares with, as the stored value reads as text:
    yes/no as true/false; numbers, dates and option ids as they are written."""
    field = ar.list.fields.filter(name=ar.field_name).only("format").first()
    if field is not None and field.format == FieldFormat.BOOLEAN:
        return BOOLEAN_TEXT.get(ar.field_value.lower(), ar.field_value)
    return ar.field_value


def _field_changed(ar: Autoresponder, params: dict[str, Any]) -> _Source:
    """Each recorded change of the field that matches (campaigns/autoresponder_events.py)."""
    params.update(field=ar.field_name, value=comparable_value(ar), threshold=ar.threshold)
    new, old = _number("c.new"), _number("c.old")
    if ar.change == FieldChangeKind.ABOVE:
        condition = f"{new} >= %(threshold)s AND ({old} IS NULL OR {old} < %(threshold)s)"
    elif ar.change == FieldChangeKind.BELOW:
        condition = f"{new} < %(threshold)s AND {old} >= %(threshold)s"
    else:
        condition = "(c.new #>> '{}') = %(value)s AND (c.old #>> '{}') IS DISTINCT FROM %(value)s"
    return _Source(
        tables="campaigns_fieldchange c JOIN members_member m ON m.id = c.member_id",
        where=f"""c.list_id = %(list)s AND c.field = %(field)s
              AND c.changed_at > %(since)s AND c.changed_at <= %(now)s
              AND {condition}""",
        occurrence="'change:' || c.id",
        at="c.changed_at",
    )


def _opened(ar: Autoresponder, params: dict[str, Any]) -> _Source:
    """A person's open or click of the campaign, once per member (the occurrence names the
    campaign). Machine opens and clicks (privacy proxies, link scanners) do not count; a
    click counts as an open, as for the statistics."""
    opened = ar.trigger == TriggerKind.OPENED
    params.update(
        trigger_campaign=ar.trigger_campaign_id,
        kinds=[TrackingKind.OPEN.value, TrackingKind.CLICK.value]
        if opened
        else [TrackingKind.CLICK.value],
        occurrence=f"{ar.trigger}:{ar.trigger_campaign_id}",
    )
    return _Source(
        tables="campaigns_trackingevent e JOIN members_member m ON m.id = e.member_id",
        where="""e.campaign_id = %(trigger_campaign)s AND e.kind = ANY(%(kinds)s)
              AND NOT e.machine
              AND e.created_at > %(since)s AND e.created_at <= %(now)s""",
        occurrence="%(occurrence)s::text",
        at="e.created_at",
    )


def _not_opened(run: _Run, params: dict[str, Any]) -> _Source | None:
    """The campaign's recipients whose mail was sent ``days`` days ago and not opened by a
    person (a click counts as an open) by now. Only looked at while some sent_at can be
    that old and newer than the last look: around the campaign's send, ``days`` later."""
    ar = run.autoresponder
    wait = timedelta(days=ar.days)
    times = (
        Campaign.objects.filter(pk=int(ar.trigger_campaign_id or 0))
        .values_list("started_at", "finished_at")
        .first()
    )
    if times is None or times[0] is None or times[0] + wait > run.now:
        return None
    if times[1] is not None and times[1] + wait + _CLOCKS < run.since:
        return None
    params.update(
        trigger_campaign=ar.trigger_campaign_id,
        days=ar.days,
        occurrence=f"{ar.trigger}:{ar.trigger_campaign_id}",
    )
    return _Source(
        tables="campaigns_delivery d JOIN members_member m ON m.id = d.member_id",
        where="""d.campaign_id = %(trigger_campaign)s AND d.status = 'sent'
              AND d.sent_at > %(since)s - make_interval(days => %(days)s)
              AND d.sent_at <= %(now)s - make_interval(days => %(days)s)
              AND NOT EXISTS (
                  SELECT 1 FROM campaigns_deliveryactivity a
                  WHERE a.delivery_id = d.id AND a.opened_at IS NOT NULL)""",
        occurrence="%(occurrence)s::text",
        at="d.sent_at + make_interval(days => %(days)s)",
    )


# -- the later steps -----------------------------------------------------------------------


def _follow(run: _Run, previous: AutoresponderStep, step: AutoresponderStep) -> int:
    """The next step for each delivery of ``previous`` sent since the last look."""
    ar = run.autoresponder
    member_state = _UNSUBSCRIBED if ar.trigger == TriggerKind.UNSUBSCRIBED else _RECEIVING
    sql = f"""
        INSERT INTO campaigns_delivery {_COLUMNS}
        SELECT %(campaign)s, d.member_id, d.email, d.occurrence, 'queued', 0, '', '',
               {_due(run, "d.sent_at")}
        FROM campaigns_delivery d JOIN members_member m ON m.id = d.member_id
        WHERE d.campaign_id = %(previous)s AND d.status = 'sent' AND d.occurrence <> ''
          AND d.sent_at > %(follow_since)s AND {member_state}
          AND NOT EXISTS (
              SELECT 1 FROM campaigns_delivery x
              WHERE x.campaign_id = %(campaign)s AND x.email = d.email
                AND x.occurrence = d.occurrence)
        ON CONFLICT (campaign_id, email, occurrence) DO NOTHING"""  # nosec B608  # our own fragments, values bound
    params = run.params()
    params.update(
        campaign=step.campaign_id,
        previous=previous.campaign_id,
        delay=step.delay_minutes,
        follow_since=run.follow_since,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


# -- waking the senders --------------------------------------------------------------------


def _wake_senders(steps: list[AutoresponderStep], written: dict[int, int], now: datetime) -> None:
    """Queue senders (after commit) for the steps with rows due: as many as the due rows
    need, up to SEND_PARALLELISM, when rows were just written or no sender is at work."""
    batch = settings.SEND_BATCH_SIZE
    most = settings.SEND_PARALLELISM
    for step in steps:
        with connection.cursor() as cursor:
            cursor.execute(
                """SELECT
                     (SELECT count(*) FROM (
                        SELECT 1 FROM campaigns_delivery
                        WHERE campaign_id = %(c)s AND status = 'queued'
                          AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
                        LIMIT %(limit)s) due),
                     EXISTS (SELECT 1 FROM campaigns_delivery
                             WHERE campaign_id = %(c)s AND status = 'sending')""",
                {"c": step.campaign_id, "now": now, "limit": batch * most},
            )
            due, busy = cursor.fetchone() or (0, False)
        if not due or (busy and not written.get(step.campaign_id)):
            continue
        for _sender in range(min(most, max(1, math.ceil(due / batch)))):
            deliveries_added(campaign_id=step.campaign_id)
