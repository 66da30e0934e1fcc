"""The watchdog: one pass checks everything, alerts, and opens or closes the incident.

It runs outside Celery (``manage.py watchdog``: a cron entry, a systemd timer or the
docker-compose service), so it works when the queue does not, and it keeps its memory in
the status store (monitoring/status.py), not in the database, so it works when the
database does not. One pass:

1. Run every check (monitoring/checks.py).
2. Something fails and no incident is open: open one (a new key) and queue the
   ``problem`` alert. Still failing: add what newly fails to it, and queue a ``reminder``
   every MONITOR_REMINDER_MINUTES. Everything green for MONITOR_RECOVERY_SECONDS: close
   it and queue the ``recovery`` alert. So one alert per incident, never a storm.
3. Deliver the queued alerts (email and webhook, each retried on later passes until it
   goes out, for a day at most).
4. Write the incidents to the database when it answers (idempotent, by key; an incident
   that opened and closed while it was down is written once it is back).
5. Write the status store, which the web processes read for the banner.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from monitoring import alerts, checks, status
from monitoring.models import Incident, IncidentKind, IncidentSource

log = logging.getLogger("heyloyalty.monitoring")

# A failure of one of these takes the product away from customers: an outage. Anything
# else (the queue, the relay, a late job) delays work: degraded service.
OUTAGE_COMPONENTS = {"database", "redis", "web"}
PENDING_FOR = timedelta(days=1)


@dataclass
class PassResult:
    at: datetime
    checks: list[checks.Check]
    incident: dict[str, Any] | None  # the open incident after this pass
    opened: bool = False
    closed: dict[str, Any] | None = None
    sent: list[str] = field(default_factory=list)  # "problem:email", "recovery:webhook", …

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "status": "fail" if any(c.failing for c in self.checks) else "ok",
            "checks": [c.as_dict() for c in self.checks],
            "incident": self.incident,
            "opened": self.opened,
            "closed": self.closed,
            "alerts_sent": self.sent,
        }


def title_for(components: list[str]) -> str:
    return "Failing: " + ", ".join(components)


def kind_for(components: list[str]) -> str:
    if OUTAGE_COMPONENTS & set(components):
        return IncidentKind.OUTAGE
    return IncidentKind.DEGRADED


def run_pass() -> PassResult:
    _fresh_connection()
    results = checks.run(watchdog=True)
    try:
        with status.locked():
            return _decide_and_record(results)
    finally:
        _fresh_connection()


def _fresh_connection() -> None:
    """A long-running process has no requests to recycle its connection: do it per pass,
    so a database that came back is used again (not inside a transaction: tests)."""
    if not connection.in_atomic_block:
        close_old_connections()


def _decide_and_record(results: list[checks.Check]) -> PassResult:
    now = timezone.now()
    doc = status.read()
    state: dict[str, Any] = dict((doc.get("watchdog") or {}).get("state") or {})
    incident: dict[str, Any] | None = state.get("incident")
    closing: list[dict[str, Any]] = list(state.get("closing") or [])
    pending: list[dict[str, Any]] = list(state.get("pending") or [])
    database_up = not checks.database_down(results)
    if incident is None and database_up:
        incident = _adopt_open_incident()
    result = PassResult(at=now, checks=results, incident=None)
    failing = [c for c in results if c.failing]
    check_rows = [c.as_dict() for c in results]

    if failing:
        state["healthy_since"] = None
        names = [c.name for c in failing]
        if incident is None:
            incident = {
                "key": uuid.uuid4().hex,
                "started_at": now.isoformat(),
                "components": names,
                "alerted_at": None,
                "reminded_at": None,
                "recovery_alerted_at": None,
                "resolved_at": None,
            }
            result.opened = True
            event: str | None = "problem"
        else:
            incident["components"] += [n for n in names if n not in incident["components"]]
            last = _time(incident.get("reminded_at") or incident["started_at"])
            event = None
            if now - last >= timedelta(minutes=settings.MONITOR_REMINDER_MINUTES):
                incident["reminded_at"] = now.isoformat()
                event = "reminder"
        incident["kind"] = kind_for(incident["components"])
        incident["title"] = title_for(incident["components"])
        incident["details"] = {"checks": [c.as_dict() for c in failing]}
        if event:
            pending.append(_queue(event, incident, check_rows, now))
    elif incident is not None:
        healthy_since = _time(state["healthy_since"]) if state.get("healthy_since") else now
        state["healthy_since"] = healthy_since.isoformat()
        if now - healthy_since >= timedelta(seconds=settings.MONITOR_RECOVERY_SECONDS):
            incident["resolved_at"] = now.isoformat()
            pending.append(_queue("recovery", incident, check_rows, now))
            closing.append(incident)
            result.closed, incident = incident, None
            state["healthy_since"] = None

    remembered = list(state.get("technicians") or [])
    to = alerts.recipients(remembered) if pending else remembered
    pending = _deliver(pending, to, [incident, *closing], result, now)
    if database_up:
        incident, closing = _save(incident, closing)
        with contextlib.suppress(DatabaseError):
            remembered = alerts.technicians()

    result.incident = incident
    state.update(incident=incident, closing=closing, pending=pending, technicians=remembered)
    doc["incidents"] = _open_incidents(doc, incident, database_up)
    doc["watchdog"] = {"at": now.isoformat(), "state": state, "checks": check_rows}
    status.write(doc)
    return result


def _queue(
    event: str, incident: dict[str, Any], check_rows: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    return {
        "event": event,
        "incident": dict(incident),
        "checks": check_rows,
        "at": now.isoformat(),
        "email": False,
        "webhook": False,
    }


def _deliver(
    pending: list[dict[str, Any]],
    to: list[str],
    records: list[dict[str, Any] | None],
    result: PassResult,
    now: datetime,
) -> list[dict[str, Any]]:
    """Send what is queued, oldest first; keep what did not go out (for a day)."""
    kept = []
    for item in pending:
        alert = alerts.Alert(item["event"], item["incident"], item["checks"], _time(item["at"]))
        if not item["email"] and alerts.send_email(alert, to):
            item["email"] = True
            if to:
                result.sent.append(f"{alert.event}:email")
        if not item["webhook"] and alerts.send_webhook(alert):
            item["webhook"] = True
            if settings.MONITOR_WEBHOOK_URL:
                result.sent.append(f"{alert.event}:webhook")
        if item["email"] or item["webhook"]:
            _mark_alerted(item, records, now)
        if not (item["email"] and item["webhook"]) and now - _time(item["at"]) < PENDING_FOR:
            kept.append(item)
    return kept


def _mark_alerted(
    item: dict[str, Any], records: list[dict[str, Any] | None], now: datetime
) -> None:
    name = {"problem": "alerted_at", "recovery": "recovery_alerted_at"}.get(item["event"])
    if name is None:
        return
    for record in records:
        if record is not None and record["key"] == item["incident"]["key"]:
            record[name] = record.get(name) or now.isoformat()


def _save(
    incident: dict[str, Any] | None, closing: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Write the records to the database; those written leave ``closing``. An open incident
    that a main admin resolved meanwhile is dropped (a new one opens if it still fails)."""
    from monitoring.services import watchdog_incident_save

    left = []
    for record in closing:
        try:
            watchdog_incident_save(record=record)
        except DatabaseError as error:
            log.warning("could not record incident %s: %s", record["key"], error)
            left.append(record)
    if incident is not None:
        try:
            row = watchdog_incident_save(record=incident)
        except DatabaseError as error:
            log.warning("could not record incident %s: %s", incident["key"], error)
        else:
            if row.resolved_at is not None:
                incident = None
    return incident, left


def _adopt_open_incident() -> dict[str, Any] | None:
    """An open incident in the database that the status store forgot (a lost file)."""
    try:
        row = Incident.objects.filter(
            source=IncidentSource.WATCHDOG, resolved_at__isnull=True
        ).first()
    except DatabaseError:
        return None
    if row is None:
        return None
    return {
        "key": row.key,
        "kind": row.kind,
        "title": row.title,
        "started_at": row.started_at.isoformat(),
        "components": list(row.components or []),
        "alerted_at": _iso(row.alerted_at),
        "reminded_at": _iso(row.reminded_at),
        "recovery_alerted_at": None,
        "resolved_at": None,
        "details": row.details or {},
    }


def _open_incidents(
    doc: dict[str, Any], incident: dict[str, Any] | None, database_up: bool
) -> list[dict[str, Any]]:
    """What the banner shows: the database's open incidents; while it is down, the main
    admins' last known ones and the watchdog's own."""
    if database_up:
        try:
            return status.open_incidents_from_database()
        except DatabaseError:
            pass
    others = [i for i in doc.get("incidents") or [] if i.get("source") != IncidentSource.WATCHDOG]
    if incident is None:
        return others
    own = {
        "key": incident["key"],
        "source": IncidentSource.WATCHDOG.value,
        "kind": incident["kind"],
        "title": incident["title"],
        "message": "",
        "components": incident["components"],
        "started_at": incident["started_at"],
        "ends_at": None,
    }
    return [*others, own]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
