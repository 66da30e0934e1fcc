"""Reads for the status page: incident history and monthly availability.

Incidents belong to no customer account: every signed-in user sees the same history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from monitoring.models import Incident, IncidentKind


def incidents_history(*, now: datetime | None = None) -> QuerySet[Incident]:
    """Every incident that has begun, newest first (planned maintenance still to come
    is on the banner, not in the history)."""
    now = now or timezone.now()
    return Incident.objects.filter(started_at__lte=now).order_by("-started_at", "-id")


@dataclass(frozen=True)
class MonthAvailability:
    month: date  # the first day
    seconds: float  # of the month so far
    outage_seconds: float
    degraded_seconds: float
    maintenance_seconds: float
    incidents: int

    @property
    def availability(self) -> float:
        """Percent of the month without an outage; planned maintenance does not count."""
        counted = self.seconds - self.maintenance_seconds
        if counted <= 0:
            return 100.0
        return max(0.0, 100.0 * (1 - self.outage_seconds / counted))


def _month_start(day: date) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, 1))


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _merged(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Overlapping intervals as one: two incidents at once are one stretch of downtime."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap(intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    return sum(
        max(0.0, (min(b, end) - max(a, start)).total_seconds()) for a, b in intervals if a < end
    )


def monthly_availability(
    *, months: int = 12, now: datetime | None = None
) -> list[MonthAvailability]:
    """The last ``months`` months, newest first, in local time."""
    now = now or timezone.now()
    local = timezone.localtime(now).date()
    first = date(local.year, local.month, 1)
    for _ in range(months - 1):
        first = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    begin = _month_start(first)
    rows = list(
        Incident.objects.filter(started_at__lt=now)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gt=begin))
        .values_list("kind", "started_at", "resolved_at")
    )
    by_kind: dict[str, list[tuple[datetime, datetime]]] = {k: [] for k in IncidentKind.values}
    for kind, started, resolved in rows:
        by_kind[kind].append((started, min(resolved or now, now)))
    merged = {kind: _merged(spans) for kind, spans in by_kind.items()}
    result = []
    month = first
    while _month_start(month) < now:
        start, end = _month_start(month), min(_month_start(_next_month(month)), now)
        result.append(
            MonthAvailability(
                month=month,
                seconds=(end - start).total_seconds(),
                outage_seconds=_overlap(merged[IncidentKind.OUTAGE], start, end),
                degraded_seconds=_overlap(merged[IncidentKind.DEGRADED], start, end),
                maintenance_seconds=_overlap(merged[IncidentKind.MAINTENANCE], start, end),
                incidents=sum(1 for _k, s, r in rows if s < end and (r is None or r > start)),
            )
        )
        month = _next_month(month)
    return list(reversed(result))


def downtime_budget(availability_target: float = 99.9) -> timedelta:
    """How much outage a 30-day month allows at the promised availability."""
    return timedelta(days=30) * (1 - availability_target / 100)
