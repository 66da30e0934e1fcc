"""Every write of the monitoring app: job heartbeats and incidents.

Incidents opened and resolved here (by a main admin, or recorded by the watchdog) are
also published to the status store after commit, so the banner follows at once, also on
web processes that cannot reach the database later.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import User
from monitoring.models import Heartbeat, Incident, IncidentKind, IncidentSource


class IncidentError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def heartbeat_record(*, name: str, at: datetime | None = None) -> None:
    """A beat job ran: one UPDATE (an INSERT the first time)."""
    at = at or timezone.now()
    if Heartbeat.objects.filter(name=name).update(last_seen_at=at):
        return
    try:
        with transaction.atomic():
            Heartbeat.objects.create(name=name, last_seen_at=at, watching_since=at)
    except IntegrityError:  # another worker created it meanwhile
        Heartbeat.objects.filter(name=name).update(last_seen_at=at)


def heartbeats_watch(*, names: list[str]) -> dict[str, Heartbeat]:
    """The heartbeat rows of these jobs; a job not yet seen is watched from now."""
    rows = {h.name: h for h in Heartbeat.objects.filter(name__in=names)}
    missing = [Heartbeat(name=n) for n in names if n not in rows]
    if missing:
        Heartbeat.objects.bulk_create(missing, ignore_conflicts=True)
        rows = {h.name: h for h in Heartbeat.objects.filter(name__in=names)}
    return rows


def _publish_after_commit() -> None:
    from monitoring import status

    transaction.on_commit(status.publish_from_database)


def incident_open(
    *,
    title: str,
    kind: str,
    by: User,
    message: str = "",
    started_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Incident:
    """A main admin opens an incident, or announces planned maintenance."""
    title = title.strip()
    if not title:
        raise IncidentError("Give the incident a title.", "title")
    if kind not in IncidentKind.values:
        raise IncidentError("Choose the kind of incident.", "kind")
    started_at = started_at or timezone.now()
    if ends_at is not None and ends_at <= started_at:
        raise IncidentError("The expected end must come after the start.", "ends_at")
    with transaction.atomic():
        incident = Incident.objects.create(
            key=uuid.uuid4().hex,
            source=IncidentSource.ADMIN,
            kind=kind,
            title=title,
            message=message.strip(),
            started_at=started_at,
            ends_at=ends_at,
            created_by=by,
        )
        _publish_after_commit()
    return incident


def incident_resolve(*, incident: Incident, by: User | None, at: datetime | None = None) -> bool:
    """Close an open incident; False when it was already closed (a conditional update)."""
    at = at or timezone.now()
    at = max(at, incident.started_at)
    with transaction.atomic():
        done = Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(
            resolved_at=at, resolved_by=by
        )
        if done:
            incident.resolved_at, incident.resolved_by = at, by
            _publish_after_commit()
    return bool(done)


def incident_update(
    *, incident: Incident, title: str, message: str, ends_at: datetime | None
) -> Incident:
    """A main admin corrects what customers read, or the expected end."""
    title = title.strip()
    if not title:
        raise IncidentError("Give the incident a title.", "title")
    if ends_at is not None and ends_at <= incident.started_at:
        raise IncidentError("The expected end must come after the start.", "ends_at")
    with transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(
            title=title, message=message.strip(), ends_at=ends_at
        )
        incident.title, incident.message, incident.ends_at = title, message.strip(), ends_at
        _publish_after_commit()
    return incident


def watchdog_incident_save(*, record: dict[str, Any]) -> Incident:
    """Write the watchdog's own record of an incident (opened, updated or closed while
    the database may have been away): keyed by ``record["key"]``, idempotent.

    A record that closes an incident never reopens it: the resolved time, once written,
    stays.
    """
    values = {
        "source": IncidentSource.WATCHDOG,
        "kind": record["kind"],
        "title": record["title"],
        "components": record["components"],
        "started_at": _time(record["started_at"]),
        "alerted_at": _time(record.get("alerted_at")),
        "reminded_at": _time(record.get("reminded_at")),
        "recovery_alerted_at": _time(record.get("recovery_alerted_at")),
        "details": record.get("details") or {},
    }
    resolved_at = _time(record.get("resolved_at"))
    with transaction.atomic():
        if resolved_at is None:
            # At most one open watchdog incident: one another watchdog left open ends here.
            Incident.objects.filter(
                source=IncidentSource.WATCHDOG, resolved_at__isnull=True
            ).exclude(key=record["key"]).update(
                resolved_at=Greatest(F("started_at"), values["started_at"])
            )
        incident, created = Incident.objects.select_for_update().get_or_create(
            key=record["key"], defaults={**values, "resolved_at": resolved_at}
        )
        if not created:
            for name, value in values.items():
                setattr(incident, name, value)
            if incident.resolved_at is None:
                incident.resolved_at = resolved_at
            incident.save()
    return incident


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
