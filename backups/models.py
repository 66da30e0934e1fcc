"""Backup runs, the files they made, and the restores and drills that used them.

Every backup attempt is a BackupRun (also one that never ran: ``missed``); a good one
made a BackupFile, whose manifest is kept here too, so that the admin panel, retention
and the drills know a file without opening it. Every restore and every drill is a
RestoreRun. None of these rows belongs to a customer account; only main admins see them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _


class BackupKind(models.TextChoices):
    HOURLY = "hourly", _("Hourly")
    THREE_HOURLY = "three_hourly", _("Every three hours")


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    MISSED = "missed", _("Missed")


class BackupFile(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=BackupKind.choices)
    created_at = models.DateTimeField(_("snapshot time"))
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64)
    key_id = models.CharField(_("key id"), max_length=64)
    rows = models.PositiveBigIntegerField(_("rows"), default=0)
    manifest = models.JSONField(_("manifest"))
    remote = models.CharField(_("object storage"), max_length=1000, blank=True)
    # Retention removed the file (locally and in object storage); the row stays as history.
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)
    verified_at = models.DateTimeField(_("last drill"), null=True, blank=True)
    verified_ok = models.BooleanField(_("drill passed"), null=True, blank=True)

    class Meta:
        verbose_name = _("backup file")
        verbose_name_plural = _("backup files")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["kind", "-created_at"],
                name="backupfile_kept",
                condition=Q(deleted_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return self.name


class BackupRun(models.Model):
    kind = models.CharField(_("kind"), max_length=16, choices=BackupKind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING
    )
    started_at = models.DateTimeField(_("started"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    size = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    rows = models.PositiveBigIntegerField(_("rows"), null=True, blank=True)
    file = models.ForeignKey(
        BackupFile,
        verbose_name=_("file"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    error = models.TextField(_("result"), blank=True)
    alerted_at = models.DateTimeField(_("technicians alerted"), null=True, blank=True)

    class Meta:
        verbose_name = _("backup run")
        verbose_name_plural = _("backup runs")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["kind", "-started_at"], name="backuprun_kind_started")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%Y-%m-%d %H:%M}"


class RestoreKind(models.TextChoices):
    DRILL = "drill", _("Restore drill")
    RESTORE = "restore", _("Restore")


class RestoreRun(models.Model):
    kind = models.CharField(_("kind"), max_length=16, choices=RestoreKind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING
    )
    file = models.ForeignKey(
        BackupFile,
        verbose_name=_("file"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restores",
    )
    file_names = models.JSONField(_("files"), default=list, blank=True)
    target = models.CharField(_("into"), max_length=300, blank=True)
    account_id = models.BigIntegerField(_("account"), null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started_at = models.DateTimeField(_("started"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    size = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    rows = models.PositiveBigIntegerField(_("rows"), null=True, blank=True)
    result = models.JSONField(_("details"), default=dict, blank=True)
    error = models.TextField(_("result"), blank=True)
    alerted_at = models.DateTimeField(_("technicians alerted"), null=True, blank=True)

    class Meta:
        verbose_name = _("restore or drill")
        verbose_name_plural = _("restores and drills")
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%Y-%m-%d %H:%M}"
