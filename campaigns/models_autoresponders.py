"""Autoresponders: mail that a member's own doing (or a date) sends, one member at a time.

An autoresponder watches one list for a trigger and sends a sequence of steps. Each step's
content is a Campaign of kind AUTORESPONDER that stays "sending" while the autoresponder
is on, so its mail goes through the same Delivery ledger and sending pipeline as a
campaign (campaigns/pipeline.py): a trigger firing for a member is one Delivery row,
unique per step, address and occurrence, and the evaluation (campaigns/autoresponders.py)
writes those rows with INSERT … ON CONFLICT DO NOTHING, so each member gets each step
once per occurrence however often or concurrently it runs.

Two small tables feed triggers that no other row records:

- ``FieldChange``: a member's value of a field that an active "field changed"
  autoresponder watches, before and after, written by the member update paths
  (members/services.py, members/imports.py). Only watched fields are written, and
  rows are pruned after a day: they are read only by the next evaluations.
- ``ImportTrigger``: an import that asked for autoresponders (``trigger_autoresponder``);
  its new members all carry the import's ``created_at``, which is how the "subscribed"
  trigger tells them from the members of imports that did not ask.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from accounts.models import Account
from members.models import List, Member

__all__ = [
    "Autoresponder",
    "AutoresponderStep",
    "DateDirection",
    "FieldChange",
    "FieldChangeKind",
    "ImportTrigger",
    "TriggerKind",
]


class TriggerKind(models.TextChoices):
    SUBSCRIBED = "subscribed", _("Subscribed to the list")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed from the list")
    DATE = "date", _("A date field")
    FIELD_CHANGED = "field_changed", _("A field changed")
    OPENED = "opened", _("Opened a campaign")
    CLICKED = "clicked", _("Clicked in a campaign")
    NOT_OPENED = "not_opened", _("Did not open a campaign")


class DateDirection(models.TextChoices):
    BEFORE = "before", _("days before the date")
    ON = "on", _("on the date")
    AFTER = "after", _("days after the date")


class FieldChangeKind(models.TextChoices):
    VALUE = "value", _("changes to the value")
    ABOVE = "above", _("rises to or above the number")
    BELOW = "below", _("falls below the number")


class Autoresponder(models.Model):
    """One trigger on one list and the steps it sends (AutoresponderStep)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="autoresponders")
    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="autoresponders")
    name = models.CharField(_("name"), max_length=200)
    active = models.BooleanField(_("active"), default=False)
    trigger = models.CharField(
        _("trigger"), max_length=16, choices=TriggerKind.choices, default=TriggerKind.SUBSCRIBED
    )
    # The trigger's settings; each trigger reads the ones it needs (autoresponder_problems).
    field_name = models.CharField(_("field"), max_length=64, blank=True)
    date_direction = models.CharField(
        _("when"), max_length=8, choices=DateDirection.choices, default=DateDirection.ON
    )
    days = models.PositiveIntegerField(_("days"), default=0)
    yearly = models.BooleanField(_("every year"), default=False)
    change = models.CharField(
        _("change"), max_length=8, choices=FieldChangeKind.choices, default=FieldChangeKind.VALUE
    )
    field_value = models.CharField(_("value"), max_length=255, blank=True)
    threshold = models.DecimalField(
        _("number"), max_digits=20, decimal_places=4, null=True, blank=True
    )
    trigger_campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("campaign"),
    )
    # Whole hours in the list's time zone; mail due outside [start, end) waits for the next
    # start. None (either): any time. start > end spans midnight (22 to 6).
    window_start_hour = models.PositiveSmallIntegerField(_("send from"), null=True, blank=True)
    window_end_hour = models.PositiveSmallIntegerField(_("send until"), null=True, blank=True)
    # 0: no block, no cap.
    block_days = models.PositiveIntegerField(_("block time (days)"), default=0)
    cap_per_member = models.PositiveIntegerField(_("at most per member"), default=0)
    # When the trigger was last looked at: the next evaluation looks back from here.
    evaluated_at = models.DateTimeField(null=True, blank=True)
    # A date trigger: the day (list's time zone) whose members were all looked at; later
    # evaluations that day look only at members changed since (autoresponder_triggers).
    date_checked = models.DateField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("autoresponder")
        verbose_name_plural = _("autoresponders")
        ordering = ["name", "id"]
        indexes = [
            models.Index(
                fields=["list", "trigger"], name="autoresponder_active", condition=Q(active=True)
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_start_hour__lte=23) & Q(window_end_hour__lte=24)
                | Q(window_start_hour__isnull=True)
                | Q(window_end_hour__isnull=True),
                name="autoresponder_window_hours",
            )
        ]

    def __str__(self) -> str:
        return self.name


class AutoresponderStep(models.Model):
    """One mail of the sequence: sent ``delay_minutes`` after the trigger (the first step)
    or after the previous step was sent (the others)."""

    autoresponder = models.ForeignKey(Autoresponder, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    delay_minutes = models.PositiveIntegerField(_("delay (minutes)"), default=0)
    campaign = models.OneToOneField(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="autoresponder_step"
    )

    class Meta:
        ordering = ["autoresponder", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["autoresponder", "position"], name="autoresponderstep_unique_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.autoresponder_id}#{self.position}"


class FieldChange(models.Model):
    """A watched field of a member changed (see the module docstring)."""

    id = models.BigAutoField(primary_key=True)
    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    field = models.CharField(max_length=64)
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    changed_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["list", "field", "changed_at"], name="fieldchange_recent")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.field}"


class ImportTrigger(models.Model):
    """The new members of an import that asked for autoresponders (the module docstring)."""

    list = models.ForeignKey(List, on_delete=models.CASCADE, related_name="+")
    members_created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["list", "members_created_at"], name="importtrigger_list")]

    def __str__(self) -> str:
        return f"{self.list_id} {self.members_created_at}"
