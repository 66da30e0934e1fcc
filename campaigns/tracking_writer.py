"""Writing hits to PostgreSQL: the events, and the counters statistics are read from.

``tracking_flush`` empties the Redis buffer in batches; ``events_write`` writes one batch
(or, when Redis is down, one hit straight from the request). Safe to run again on the
same hits: each carries an id made when it was answered, the insert skips ids already
there, and every counter is derived from the rows this insert actually added.

Writers take one PostgreSQL advisory lock per transaction, so the "was this the first
open of this message?" question has one answer at a time; flushers also take a session
lock, so one flusher at a time owns the buffer's processing list.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import DataError, connection, transaction
from django.utils import timezone
from psycopg2.extras import execute_values

from campaigns import tracking
from campaigns.models_tracking import USER_AGENT_MAX, TrackingKind
from campaigns.tracking_machine import BURST_SECONDS, machine_click, machine_open

log = logging.getLogger(__name__)

WRITE_LOCK = 0x484C_7472  # "HLtr": one writer of counters at a time
FLUSH_LOCK = 0x484C_7466  # "HLtf": one flusher of the buffer at a time
BATCH = 2000
KINDS = {tracking.OPEN: TrackingKind.OPEN, tracking.CLICK: TrackingKind.CLICK}


@dataclass(frozen=True)
class TrackedEvent:
    """One open or click as written: what webhooks and autoresponders are told."""

    event_id: str  # a UUID, hyphenated
    kind: str  # TrackingKind: "open" or "click"
    machine: bool
    delivery_id: int
    campaign_id: int
    member_id: str | None  # a UUID, hyphenated
    list_id: int | None
    position: int | None
    url: str | None  # clicks: the campaign's link that was followed
    ip: str | None  # truncated (tracking.truncate_ip)
    user_agent: str
    created_at: datetime


@dataclass(frozen=True)
class _Hit:
    event_id: str
    kind: str
    delivery_id: int
    position: int | None
    at: datetime
    ip: str | None  # in full, only to classify
    agent: str


@dataclass(frozen=True)
class _Delivery:
    campaign_id: int
    member_id: str | None
    sent_at: datetime | None
    list_id: int | None


@dataclass
class _Activity:
    """A DeliveryActivity row, changed in memory while a batch is counted."""

    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    machine_opened_at: datetime | None = None
    machine_clicked_at: datetime | None = None
    positions: list[int] = field(default_factory=list)
    last_click_at: datetime | None = None
    last_click_position: int | None = None


@dataclass
class _Counts:
    """What one batch adds to the counters."""

    campaigns: defaultdict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    links: defaultdict[tuple[int, int], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    hours: defaultdict[tuple[int, datetime], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    members: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    changed: set[int] = field(default_factory=set)  # delivery ids


# -- the flusher -------------------------------------------------------------------------


@dataclass(frozen=True)
class FlushResult:
    ran: bool  # False: another flusher holds the buffer
    batches: int = 0
    read: int = 0
    inserted: int = 0


@contextmanager
def _flusher_lock() -> Iterator[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [FLUSH_LOCK])
        row = cursor.fetchone()
    mine = bool(row and row[0])
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [FLUSH_LOCK])


def tracking_flush(*, batch: int = BATCH, max_seconds: float = 30.0) -> FlushResult:
    """Write what the buffer holds, a batch per transaction, for at most ``max_seconds``.

    1. A batch a previous flusher took and did not finish is written first (again: its
       events may be in already; they are skipped, and count nothing twice).
    2. Then: take the oldest hits onto the processing list (atomically, in Redis), write
       them, and only after the commit forget the processing list.
    """
    with _flusher_lock() as mine:
        if not mine:
            return FlushResult(ran=False)
        batches = read = inserted = 0
        deadline = time.monotonic() + max_seconds
        items = tracking.buffer_pending()
        while items or time.monotonic() < deadline:
            if not items:
                items = tracking.buffer_take(batch)
                if not items:
                    break
            inserted += _write(_parse(items))
            tracking.buffer_done()
            batches, read, items = batches + 1, read + len(items), []
        return FlushResult(ran=True, batches=batches, read=read, inserted=inserted)


def _write(events: list[dict[str, Any]]) -> int:
    """Write a batch; if PostgreSQL refuses a value in it, each hit alone, dropping
    (and logging) only those it refuses: one bad hit must not hold back the rest for
    ever. A database that is down is another error, and the batch waits for it."""
    try:
        return len(events_write(events))
    except DataError:
        log.exception("tracking: PostgreSQL refused a batch; writing its hits one by one")
    written = 0
    for event in events:
        try:
            written += len(events_write([event]))
        except DataError:
            log.error("tracking: dropped a hit PostgreSQL refused: %r", event)
    return written


def _parse(items: Iterable[bytes | str]) -> list[dict[str, Any]]:
    events = []
    for item in items:
        try:
            event = json.loads(item)
        except ValueError:
            log.error("tracking: dropped a buffered hit that is not JSON: %r", item[:200])
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


# -- one batch ---------------------------------------------------------------------------


def _uuid(text: str) -> str:
    """32 hex digits as PostgreSQL writes a uuid (without making a UUID object)."""
    h = text.lower()
    if len(h) != 32 or h.strip("0123456789abcdef"):
        raise ValueError(text)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hit(raw: Mapping[str, Any]) -> _Hit | None:
    try:
        kind = KINDS[raw["k"]]
        position = None if raw.get("p") is None else int(raw["p"])
        if (kind == TrackingKind.CLICK) != (position is not None):
            return None
        return _Hit(
            event_id=_uuid(str(raw["id"])),
            kind=kind,
            delivery_id=int(raw["d"]),
            position=position,
            at=datetime.fromtimestamp(float(raw["t"]), tz=UTC),
            ip=str(raw.get("ip") or "") or None,
            agent=str(raw.get("ua") or "").replace("\x00", "")[:USER_AGENT_MAX],
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def events_write(raw: Iterable[Mapping[str, Any]]) -> list[TrackedEvent]:
    """Write a batch of hits; the events inserted now (none for a batch written before).

    1. Read the hits; drop the malformed and those of deliveries or links that do not
       exist (any more).
    2. Under the write lock, read what each message's recipient had done before.
    3. Tell machines from people, in time order.
    4. Insert the events, skipping ids already there; count only those inserted.
    5. Update the counters, the first-open rows and the members' open rates.
    6. Tell outbound webhooks (members.webhook_delivery), in the same transaction.
    """
    hits = sorted(filter(None, map(_hit, raw)), key=lambda h: h.at)
    if not hits:
        return []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
        found = _deliveries({h.delivery_id for h in hits})
        urls = _links(
            {(found[h.delivery_id].campaign_id, h.position) for h in hits if _known(h, found)}
        )
        hits = [
            h
            for h in hits
            if _known(h, found)
            and (h.position is None or (found[h.delivery_id].campaign_id, h.position) in urls)
        ]
        if not hits:
            return []
        activity = _activities({h.delivery_id for h in hits})
        machine = _classify(hits, found, activity)
        events = [_event(h, found[h.delivery_id], machine[h.event_id], urls) for h in hits]
        events = _insert(events)
        if events:
            counts = _count(events, activity)
            _write_counts(counts, activity)
            _emit(events)
    return events


def _known(hit: _Hit, found: Mapping[int, _Delivery]) -> bool:
    return hit.delivery_id in found


def _event(hit: _Hit, delivery: _Delivery, machine: bool, urls: Mapping[Any, str]) -> TrackedEvent:
    return TrackedEvent(
        event_id=hit.event_id,
        kind=hit.kind,
        machine=machine,
        delivery_id=hit.delivery_id,
        campaign_id=delivery.campaign_id,
        member_id=delivery.member_id,
        list_id=delivery.list_id,
        position=hit.position,
        url=urls.get((delivery.campaign_id, hit.position)) if hit.position is not None else None,
        ip=_truncated(hit.ip),
        user_agent=hit.agent,
        created_at=hit.at,
    )


@lru_cache(maxsize=4096)  # the same addresses (proxies, offices, Apple's) come back
def _truncated(ip: str | None) -> str | None:
    return tracking.truncate_ip(ip)


def _deliveries(ids: set[int]) -> dict[int, _Delivery]:
    # The member's list by its primary key, one probe a delivery: as a join, PostgreSQL
    # may hash the whole members table for a batch (it did with fresh bulk-loaded rows
    # whose statistics were not in yet: 100 ms a batch at 100,000 members).
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT d.id, d.campaign_id, d.member_id::text, d.sent_at,
                      (SELECT m.list_id FROM members_member m WHERE m.id = d.member_id)
               FROM campaigns_delivery d WHERE d.id = ANY(%s)""",
            [list(ids)],
        )
        return {row[0]: _Delivery(*row[1:]) for row in cursor.fetchall()}


def _links(wanted: set[tuple[int, int | None]]) -> dict[tuple[int, int], str]:
    pairs = [(c, p) for c, p in wanted if p is not None]
    if not pairs:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT l.campaign_id, l.position, l.url FROM campaigns_link l
               JOIN unnest(%s::bigint[], %s::int[]) AS w(campaign_id, position)
                 ON l.campaign_id = w.campaign_id AND l.position = w.position""",
            [[c for c, _ in pairs], [p for _, p in pairs]],
        )
        return {(c, p): u for c, p, u in cursor.fetchall()}


def _activities(ids: set[int]) -> dict[int, _Activity]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT delivery_id, opened_at, clicked_at, machine_opened_at, machine_clicked_at,
                      positions, last_click_at, last_click_position
               FROM campaigns_deliveryactivity WHERE delivery_id = ANY(%s)""",
            [list(ids)],
        )
        found = {row[0]: _Activity(*row[1:]) for row in cursor.fetchall()}
    return {i: found.get(i) or _Activity() for i in ids}


def _classify(
    hits: list[_Hit], found: Mapping[int, _Delivery], activity: Mapping[int, _Activity]
) -> dict[str, bool]:
    """Machine (True) or person, per event id. Clicks are judged with their neighbours:
    the message's previous click (from before this batch too) and, within the batch, the
    next one, so every click of a scanner's burst is a machine's, not all but the first."""
    machine: dict[str, bool] = {}
    clicks: defaultdict[int, list[_Hit]] = defaultdict(list)
    for h in hits:
        sent_at = found[h.delivery_id].sent_at
        if h.kind == TrackingKind.OPEN:
            machine[h.event_id] = machine_open(at=h.at, sent_at=sent_at, ip=h.ip, agent=h.agent)
        else:
            clicks[h.delivery_id].append(h)
    for delivery_id, ordered in clicks.items():
        before = activity[delivery_id]
        previous_at, previous_position = before.last_click_at, before.last_click_position
        for i, h in enumerate(ordered):
            nxt = ordered[i + 1] if i + 1 < len(ordered) else None
            machine[h.event_id] = machine_click(
                at=h.at,
                sent_at=found[delivery_id].sent_at,
                agent=h.agent,
                position=h.position or 0,
                previous_at=previous_at,
                previous_position=previous_position,
            ) or (
                nxt is not None
                and nxt.position != h.position
                and (nxt.at - h.at).total_seconds() <= BURST_SECONDS
            )
            previous_at, previous_position = h.at, h.position
    return machine


_INSERT = """INSERT INTO campaigns_trackingevent
    (event_id, delivery_id, campaign_id, member_id, kind, position, machine, ip, user_agent,
     created_at)
    SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::uuid[], %s::varchar[],
                         %s::int[], %s::bool[], %s::inet[], %s::varchar[], %s::timestamptz[])
    ON CONFLICT (event_id) DO NOTHING RETURNING event_id::text"""


def _insert(events: list[TrackedEvent]) -> list[TrackedEvent]:
    """The events, but only those this insert added. One array a column: the rows are
    sent as ten values, not quoted one by one."""
    columns = [
        [getattr(e, name) for e in events]
        for name in (
            "event_id",
            "delivery_id",
            "campaign_id",
            "member_id",
            "kind",
            "position",
            "machine",
            "ip",
            "user_agent",
            "created_at",
        )
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, columns)
        added = {row[0] for row in cursor.fetchall()}
    return [e for e in events if e.event_id in added]


# -- the counters ------------------------------------------------------------------------


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _count(events: list[TrackedEvent], activity: dict[int, _Activity]) -> _Counts:
    """What the events add, in time order; ``activity`` is changed to the new state."""
    counts = _Counts()
    for e in events:
        state = activity[e.delivery_id]
        campaign = counts.campaigns[e.campaign_id]
        hour = counts.hours[(e.campaign_id, _hour(e.created_at))]
        prefix = "machine_" if e.machine else ""
        if e.kind == TrackingKind.CLICK and e.position is not None:
            campaign[f"{prefix}clicks"] += 1
            hour[f"{prefix}clicks"] += 1
            link = counts.links[(e.campaign_id, e.position)]
            link[f"{prefix}clicks"] += 1
            _first_click(counts, e, state, campaign, link)
            state.last_click_at, state.last_click_position = e.created_at, e.position
            counts.changed.add(e.delivery_id)
        # A click is an open too when the message has none yet, as mail services count.
        if e.kind == TrackingKind.OPEN or _opens_by_click(e, state):
            campaign[f"{prefix}opens"] += 1
            hour[f"{prefix}opens"] += 1
            if _first_open(counts, e, state, campaign):
                counts.changed.add(e.delivery_id)
    return counts


def _opens_by_click(e: TrackedEvent, state: _Activity) -> bool:
    if e.kind != TrackingKind.CLICK:
        return False
    if e.machine:
        return state.opened_at is None and state.machine_opened_at is None
    return state.opened_at is None


def _first_open(counts: _Counts, e: TrackedEvent, state: _Activity, campaign: Counter[str]) -> bool:
    """Count the message as opened if it was not; whether it was not."""
    if e.machine:
        if state.machine_opened_at is not None:
            return False
        state.machine_opened_at = e.created_at
        campaign["unique_machine_opens"] += 1
        return True
    if state.opened_at is not None:
        return False
    state.opened_at = e.created_at
    campaign["unique_opens"] += 1
    if e.member_id is not None:
        counts.members[e.member_id]["opened"] += 1
    return True


def _first_click(
    counts: _Counts, e: TrackedEvent, state: _Activity, campaign: Counter[str], link: Counter[str]
) -> None:
    if e.machine:
        if state.machine_clicked_at is None:
            state.machine_clicked_at = e.created_at
            campaign["unique_machine_clicks"] += 1
        return
    if state.clicked_at is None:
        state.clicked_at = e.created_at
        campaign["unique_clicks"] += 1
        if e.member_id is not None:
            counts.members[e.member_id]["clicked"] += 1
    if e.position is not None and e.position not in state.positions:
        state.positions.append(e.position)
        link["unique_clicks"] += 1


CAMPAIGN_FIELDS = (
    "opens",
    "unique_opens",
    "clicks",
    "unique_clicks",
    "machine_opens",
    "unique_machine_opens",
    "machine_clicks",
    "unique_machine_clicks",
)
LINK_FIELDS = ("clicks", "unique_clicks", "machine_clicks")
HOUR_FIELDS = ("opens", "clicks", "machine_opens", "machine_clicks")


def _upsert_sum(
    table: str,
    keys: tuple[str, ...],
    fields: tuple[str, ...],
    rows: list[Any],
    replaced: tuple[str, ...] = (),
) -> None:
    """INSERT the rows (keys, fields, then ``replaced``); where the key is there already,
    add the fields to what it holds and set the ``replaced`` columns."""
    if not rows:
        return
    columns = ", ".join((*keys, *fields, *replaced))
    changes = [f"{f} = t.{f} + EXCLUDED.{f}" for f in fields]
    changes += [f"{f} = EXCLUDED.{f}" for f in replaced]
    sql = (
        f"INSERT INTO {table} AS t ({columns}) VALUES %s "  # noqa: S608 - our own names  # nosec B608
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(changes)}"
    )
    with connection.cursor() as cursor:
        execute_values(cursor.cursor, sql, rows, page_size=len(rows))


_ACTIVITY = """INSERT INTO campaigns_deliveryactivity AS a
    (delivery_id, opened_at, clicked_at, machine_opened_at, machine_clicked_at, positions,
     last_click_at, last_click_position)
    SELECT d, o, c, mo, mc, string_to_array(p, ',')::int[], lc, lp
    FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[],
                %s::timestamptz[], %s::text[], %s::timestamptz[], %s::int[])
         AS r(d, o, c, mo, mc, p, lc, lp)
    ON CONFLICT (delivery_id) DO UPDATE SET
      opened_at = EXCLUDED.opened_at, clicked_at = EXCLUDED.clicked_at,
      machine_opened_at = EXCLUDED.machine_opened_at,
      machine_clicked_at = EXCLUDED.machine_clicked_at, positions = EXCLUDED.positions,
      last_click_at = EXCLUDED.last_click_at, last_click_position = EXCLUDED.last_click_position"""


def _write_activity(changed: list[int], activity: dict[int, _Activity]) -> None:
    """The first-open rows of the messages the batch changed, one array a column (as
    the events are written: no row quoted one by one). A message's link positions go as
    text ("0,3"): arrays of arrays must be rectangular in PostgreSQL."""
    if not changed:
        return
    states = [activity[i] for i in changed]
    columns: list[list[Any]] = [
        changed,
        [s.opened_at for s in states],
        [s.clicked_at for s in states],
        [s.machine_opened_at for s in states],
        [s.machine_clicked_at for s in states],
        [",".join(map(str, s.positions)) for s in states],
        [s.last_click_at for s in states],
        [s.last_click_position for s in states],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_ACTIVITY, columns)


def _write_counts(counts: _Counts, activity: dict[int, _Activity]) -> None:
    _write_activity(sorted(counts.changed), activity)
    now = datetime.now(UTC)
    _upsert_sum(
        "campaigns_campaignstats",
        ("campaign_id",),
        CAMPAIGN_FIELDS,
        [(c, *(n[f] for f in CAMPAIGN_FIELDS), now) for c, n in sorted(counts.campaigns.items())],
        replaced=("updated_at",),
    )
    _upsert_sum(
        "campaigns_linkstats",
        ("campaign_id", "position"),
        LINK_FIELDS,
        [(c, p, *(n[f] for f in LINK_FIELDS)) for (c, p), n in sorted(counts.links.items())],
    )
    _upsert_sum(
        "campaigns_campaignhourly",
        ("campaign_id", "hour"),
        HOUR_FIELDS,
        [(c, h, *(n[f] for f in HOUR_FIELDS)) for (c, h), n in sorted(counts.hours.items())],
    )
    _write_members(counts)


def _write_members(counts: _Counts) -> None:
    """Each member's opened and clicked mails, and the open rate of those who opened."""
    members = sorted(counts.members)
    if not members:
        return
    _upsert_sum(
        "campaigns_memberactivity",
        ("member_id",),
        ("opened", "clicked"),
        [(m, counts.members[m]["opened"], counts.members[m]["clicked"]) for m in members],
    )
    opened = [m for m in members if counts.members[m]["opened"]]
    if opened:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE members_member m SET open_rate = {_open_rate("a.opened")}
                    FROM campaigns_memberactivity a
                    WHERE a.member_id = m.id AND m.id = ANY(%s::uuid[])
                      AND a.member_id = ANY(%s::uuid[])""",  # noqa: S608 - both sides by key  # nosec B608
                [opened, opened],
            )


def _open_rate(opened: str) -> str:
    """SQL for a member's open rate (``m`` is members_member): the mails a person
    opened, of those sent to them. sent_mail grows when a send finishes while opens come
    in during it, so never above 100."""
    return (
        f"CASE WHEN {opened} > 0 THEN LEAST(100, ROUND(100.0 * {opened} / "
        f"GREATEST(m.sent_mail, {opened})))::int ELSE 0 END"
    )


def member_rates_refresh(*, max_campaigns: int = 5) -> int:
    """Recompute the open rates of the recipients of campaigns that finished since
    (their sent_mail grew by one), and count their recipients per status once, for the
    report. Returns how many campaigns it did."""
    from campaigns.models import Campaign
    from campaigns.selectors import delivery_counts

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.id, c.finished_at FROM campaigns_campaign c
               LEFT JOIN campaigns_campaignstats s ON s.campaign_id = c.id
               WHERE c.status = 'sent' AND c.finished_at > %s
                 AND (s.member_rates_at IS NULL OR s.member_rates_at < c.finished_at)
               ORDER BY c.finished_at LIMIT %s""",
            [timezone.now() - timedelta(days=7), max_campaigns],
        )
        due = cursor.fetchall()
    for campaign_id, finished_at in due:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
            cursor.execute(
                f"""UPDATE members_member m SET open_rate = {_open_rate("x.opened")}
                    FROM (SELECT d.member_id, COALESCE(a.opened, 0) AS opened
                          FROM campaigns_delivery d
                          LEFT JOIN campaigns_memberactivity a ON a.member_id = d.member_id
                          WHERE d.campaign_id = %s AND d.status = 'sent') AS x
                    WHERE m.id = x.member_id
                      AND m.open_rate IS DISTINCT FROM ({_open_rate("x.opened")})""",  # noqa: S608 - our own expression  # nosec B608
                [campaign_id],
            )
            cursor.execute(
                """INSERT INTO campaigns_campaignstats AS t (campaign_id, opens, unique_opens,
                       clicks, unique_clicks, machine_opens, unique_machine_opens,
                       machine_clicks, unique_machine_clicks, member_rates_at, updated_at)
                   VALUES (%s, 0, 0, 0, 0, 0, 0, 0, 0, %s, now())
                   ON CONFLICT (campaign_id)
                   DO UPDATE SET member_rates_at = EXCLUDED.member_rates_at""",
                [campaign_id, finished_at],
            )
        delivery_counts(campaign=Campaign.objects.get(pk=campaign_id))
    return len(due)


# -- webhooks ----------------------------------------------------------------------------


def _emitter() -> Callable[[list[dict[str, Any]]], object] | None:
    """``webhooks_emit_tracking`` of outbound webhooks (members/webhook_delivery.py)."""
    from members import webhook_delivery

    emit = getattr(webhook_delivery, "webhooks_emit_tracking", None)
    return emit if callable(emit) else None


def _emit(events: list[TrackedEvent]) -> None:
    """In the events' transaction (a savepoint), so what webhooks queue commits with them;
    a failure there is logged and does not hold the hits back."""
    emit = _emitter()
    if emit is None:
        return
    try:
        with transaction.atomic():
            emit([dict(vars(e)) for e in events])  # not asdict(): 30 times as slow
    except Exception:
        log.exception("tracking: webhooks_emit_tracking failed for %d events", len(events))
