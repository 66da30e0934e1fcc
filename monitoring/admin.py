"""Incidents in the admin panel, for main admins only: open one (an outage the watchdog
cannot see, or planned maintenance), correct what customers read, resolve it. The job
heartbeats are read-only."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from monitoring import heartbeats, services
from monitoring.models import Heartbeat, Incident, IncidentSource


def _superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class MainAdminOnly(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return _superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _superuser(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history: availability is computed from it


class IncidentForm(forms.ModelForm):
    class Meta:
        model = Incident
        fields = ["title", "kind", "message", "started_at", "ends_at"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        started = data.get("started_at") or (self.instance.started_at if self.instance.pk else None)
        ends = data.get("ends_at")
        if started and ends and ends <= started:
            self.add_error("ends_at", _("The expected end must come after the start."))
        return data


@admin.register(Incident)
class IncidentAdmin(MainAdminOnly):
    form = IncidentForm
    list_display = ["title", "kind", "source", "started_at", "resolved_at", "duration"]
    list_filter = ["kind", "source", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "message"]
    date_hierarchy = "started_at"
    actions = ["resolve"]

    def get_fields(self, request: HttpRequest, obj: Incident | None = None) -> Any:
        if obj is None:
            return ["title", "kind", "message", "started_at", "ends_at"]
        return [
            "title",
            "message",
            "ends_at",
            "kind",
            "source",
            "components",
            "started_at",
            "resolved_at",
            "created_by",
            "resolved_by",
            "alerted_at",
            "reminded_at",
            "recovery_alerted_at",
            "details",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Incident | None = None) -> Any:
        if obj is None:
            return []
        return [
            f for f in self.get_fields(request, obj) if f not in {"title", "message", "ends_at"}
        ]

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, incident: Incident) -> str:
        minutes = int(incident.duration_until(timezone.now()) // 60)
        return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            services.incident_update(
                incident=obj, title=data["title"], message=data["message"], ends_at=data["ends_at"]
            )
            return
        created = services.incident_open(
            title=data["title"],
            kind=data["kind"],
            message=data["message"],
            started_at=data["started_at"],
            ends_at=data["ends_at"],
            by=cast(User, request.user),
        )
        obj.pk, obj.key, obj.source = created.pk, created.key, created.source
        obj._state.adding = False

    @admin.action(description=gettext_lazy("Resolve the selected incidents"))
    def resolve(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        done = sum(
            services.incident_resolve(incident=i, by=cast(User, request.user))
            for i in queryset.filter(resolved_at__isnull=True)
        )
        messages.success(request, _("%(n)d incident(s) resolved.") % {"n": done})
        if queryset.filter(source=IncidentSource.WATCHDOG).exists():
            messages.info(
                request,
                _("The watchdog opens a new incident if its checks still fail."),
            )


@admin.register(Heartbeat)
class HeartbeatAdmin(MainAdminOnly):
    list_display = ["name", "period", "last_seen_at", "late"]
    readonly_fields = ["name", "last_seen_at", "watching_since"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("period"))
    def period(self, row: Heartbeat) -> str:
        spec = heartbeats.job_specs().get(row.name)
        return str(spec.period) if spec else "-"

    @admin.display(description=gettext_lazy("late"), boolean=True)
    def late(self, row: Heartbeat) -> bool | None:
        spec = heartbeats.job_specs().get(row.name)
        if spec is None:
            return None
        return heartbeats.job_late(spec, row.last_seen_at, row.watching_since)
