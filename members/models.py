"""Member lists. The foundation's part: enough for the demo data and the dashboard.

The members issue adds list settings, typed custom fields, segments and imports.
"""

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Account


class List(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="lists")
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("list")
        verbose_name_plural = _("lists")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class MemberStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    UNCONFIRMED = "unconfirmed", _("Unconfirmed")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    BOUNCED = "bounced", _("Bounced")
    COMPLAINED = "complained", _("Complained")


class Member(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="members")
    email = models.CharField(_("email"), max_length=254, blank=True)
    mobile = models.CharField(_("mobile"), max_length=32, blank=True)
    firstname = models.CharField(_("first name"), max_length=200, blank=True)
    lastname = models.CharField(_("last name"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        indexes = [models.Index(fields=["list", "email"], name="member_list_email")]

    def __str__(self) -> str:
        return self.email or self.mobile or str(self.id)
