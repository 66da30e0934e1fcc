"""The admin panel's view of backups and keys: for main admins (superusers) only.

Runs, files, restores and drills are read-only history; a file can be sent to a restore
drill. The system keys page shows each key's id, creation date and age, never its value.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from backups import tasks
from backups.models import BackupFile, BackupRun, RestoreRun
from heyloyalty import keys


def _superuser(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_superuser)


class MainAdminReadOnly(admin.ModelAdmin):
    """History: only main admins see it, and nobody edits it."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _superuser(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return str(value)


@admin.register(BackupRun)
class BackupRunAdmin(MainAdminReadOnly):
    list_display = ["started_at", "kind", "status", "duration_s", "size_h", "rows", "file"]
    list_filter = ["kind", "status"]
    date_hierarchy = "started_at"

    @admin.display(description=gettext_lazy("duration (s)"), ordering="duration")
    def duration_s(self, obj: BackupRun) -> str:
        return f"{obj.duration:.1f}" if obj.duration is not None else "-"

    @admin.display(description=gettext_lazy("size"), ordering="size")
    def size_h(self, obj: BackupRun) -> str:
        return _size(obj.size)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.keys_view)
        return [path("keys/", view, name="backups_keys"), *super().get_urls()]

    def keys_view(self, request: HttpRequest) -> HttpResponse:
        """Every system key's kind, id, creation date and age. Never its value."""
        if not _superuser(request):
            raise PermissionDenied
        rows = keys.ages()
        context = {
            **self.admin_site.each_context(request),
            "title": _("System keys"),
            "rows": rows,
            "rotation_days": keys.rotation_days(),
            "due": [row for row in rows if row.due],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/backups/keys.html", context)


@admin.register(BackupFile)
class BackupFileAdmin(MainAdminReadOnly):
    list_display = [
        "name",
        "kind",
        "created_at",
        "size_h",
        "rows",
        "key_id",
        "verified_ok",
        "verified_at",
        "deleted_at",
    ]
    list_filter = ["kind", "verified_ok", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name"]
    actions = ["drill"]

    @admin.display(description=gettext_lazy("size"), ordering="size")
    def size_h(self, obj: BackupFile) -> str:
        return _size(obj.size)

    def has_drill_permission(self, request: HttpRequest) -> bool:
        return _superuser(request)

    @admin.action(description=gettext_lazy("Run a restore drill of the selected files"))
    def drill(self, request: HttpRequest, queryset: QuerySet[BackupFile]) -> None:
        ids = list(queryset.filter(deleted_at__isnull=True).values_list("pk", flat=True))
        for file_id in ids:
            transaction.on_commit(lambda i=file_id: tasks.drill_file.delay(i))  # type: ignore[misc]
        self.message_user(
            request,
            _("%(count)d restore drill(s) queued; the results appear under Restores and drills.")
            % {"count": len(ids)},
            messages.SUCCESS,
        )


@admin.register(RestoreRun)
class RestoreRunAdmin(MainAdminReadOnly):
    list_display = ["started_at", "kind", "status", "target", "account_id", "rows", "duration_s"]
    list_filter = ["kind", "status"]
    date_hierarchy = "started_at"

    @admin.display(description=gettext_lazy("duration (s)"), ordering="duration")
    def duration_s(self, obj: RestoreRun) -> str:
        return f"{obj.duration:.1f}" if obj.duration is not None else "-"
