"""Incidents (opened by the watchdog or by a main admin) and the heartbeats of beat jobs.

Neither belongs to a customer account: every customer sees the same incidents, on the
dashboard banner and the status page. Process heartbeats (workers, beat) live in Redis,
where they expire by themselves (monitoring/heartbeats.py); the heartbeat of each beat job
lives here, so that a Redis restart does not make every job look late.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _


class IncidentKind(models.TextChoices):
    OUTAGE = "outage", _("Outage")
    DEGRADED = "degraded", _("Degraded service")
    MAINTENANCE = "maintenance", _("Planned maintenance")


class IncidentSource(models.TextChoices):
    WATCHDOG = "watchdog", _("Watchdog")
    ADMIN = "admin", _("Main admin")


class Incident(models.Model):
    # The watchdog names an incident before it can reach the database (it may be down).
    key = models.CharField(_("key"), max_length=64, unique=True)
    source = models.CharField(_("opened by"), max_length=16, choices=IncidentSource.choices)
    kind = models.CharField(_("kind"), max_length=16, choices=IncidentKind.choices)
    title = models.CharField(_("title"), max_length=200)
    message = models.TextField(
        _("message to customers"),
        blank=True,
        help_text=_("Shown on every dashboard page while the incident is open."),
    )
    # The checks that failed (watchdog incidents): database, redis, worker, ...
    components = models.JSONField(_("components"), default=list, blank=True)
    started_at = models.DateTimeField(_("started"), default=now)
    # Planned maintenance: when it is expected to end (the banner says so).
    ends_at = models.DateTimeField(_("expected end"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("opened by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    alerted_at = models.DateTimeField(_("technicians alerted"), null=True, blank=True)
    reminded_at = models.DateTimeField(_("last reminder"), null=True, blank=True)
    recovery_alerted_at = models.DateTimeField(_("recovery alert"), null=True, blank=True)
    details = models.JSONField(_("last checks"), default=dict, blank=True)

    class Meta:
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        ordering = ["-started_at", "-id"]
        constraints = [
            # Two watchdogs (a cron entry and a service, say) never open two incidents.
            models.UniqueConstraint(
                fields=["source"],
                condition=Q(resolved_at__isnull=True, source="watchdog"),
                name="incident_one_open_from_watchdog",
            ),
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True) | Q(resolved_at__gte=models.F("started_at")),
                name="incident_resolved_after_start",
            ),
        ]
        indexes = [
            models.Index(
                fields=["started_at"], name="incident_open", condition=Q(resolved_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def duration_until(self, moment: datetime | None = None) -> float:
        """Seconds from the start to the resolution (or to ``moment`` while open)."""
        end = self.resolved_at or moment or now()
        return max(0.0, (end - self.started_at).total_seconds())


class Heartbeat(models.Model):
    """The last successful run of one beat job (an entry of heyloyalty/schedule.py)."""

    name = models.CharField(_("beat job"), max_length=100, unique=True)
    last_seen_at = models.DateTimeField(_("last run"), null=True, blank=True)
    # When the watchdog began to expect this job: a job never seen is late from here.
    watching_since = models.DateTimeField(_("watched since"), default=now)

    class Meta:
        verbose_name = _("job heartbeat")
        verbose_name_plural = _("job heartbeats")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
