"""Campaigns and their recipients.

A campaign is written as a draft, aimed at lists and segments (with exclusions) and sent.
Starting the send fixes the recipient set as one Delivery row per address; the sending
pipeline (campaigns/pipeline.py) works through those rows, and every question about who
got the message, who did not and why is a query over them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from accounts.models import Account
from members.models import List, Member, Segment


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    PAUSED = "paused", _("Paused")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")


# A campaign in one of these states may still put mail on the wire.
ACTIVE_STATES = (CampaignStatus.SENDING,)
FINAL_STATES = (CampaignStatus.SENT, CampaignStatus.CANCELLED, CampaignStatus.FAILED)


class SenderDomain(models.Model):
    """A domain the account may send from. A campaign's sender address must be on one of
    the account's verified domains; an account manager or admin verifies it."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sender_domains")
    domain = models.CharField(_("domain"), max_length=253)
    verified = models.BooleanField(_("verified"), default=False)
    created_at = models.DateTimeField(_("created"), default=now)

    class Meta:
        verbose_name = _("sender domain")
        verbose_name_plural = _("sender domains")
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["account", "domain"], name="senderdomain_unique")
        ]

    def __str__(self) -> str:
        return self.domain


class CampaignKind(models.TextChoices):
    CAMPAIGN = "campaign", _("Campaign")
    # One step of an autoresponder: its content, sent through the same ledger and
    # pipeline; it stays "sending" while the autoresponder is on and never finishes.
    AUTORESPONDER = "autoresponder", _("Autoresponder step")


class Campaign(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="campaigns")
    kind = models.CharField(max_length=16, choices=CampaignKind.choices, default="campaign")
    name = models.CharField(_("name"), max_length=200)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    preheader = models.CharField(_("preheader"), max_length=255, blank=True)
    from_name = models.CharField(_("sender name"), max_length=200, blank=True)
    from_email = models.EmailField(_("sender email"), blank=True)
    reply_to = models.EmailField(_("reply-to"), blank=True)
    html = models.TextField(_("HTML body"), blank=True)
    # Empty: generated from the HTML when the message is built.
    text = models.TextField(_("text body"), blank=True)
    tracking = models.BooleanField(_("track opens and clicks"), default=True)
    status = models.CharField(
        _("status"), max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    scheduled_at = models.DateTimeField(_("scheduled for"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    # When the first Delivery rows and the links were written and the senders could start.
    prepared_at = models.DateTimeField(null=True, blank=True)
    # The rest of the recipient set is being written (the first rows go out meanwhile);
    # the campaign cannot end as sent before it is False. From then on the set is fixed.
    recipients_pending = models.BooleanField(default=False)
    # Sent, but the recipients' `sent_mail` counters are not yet raised (a step of its own
    # after the status, so "sent" is not held back by a million member updates).
    sent_mail_pending = models.BooleanField(default=False)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Why the campaign is paused or failed, for its owner.
    status_reason = models.TextField(_("reason"), blank=True)
    # Fixed when the send starts; the counters are kept by the pipeline and recounted from
    # the Delivery rows when the send ends.
    recipients = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Last sign of life of the send: the reaper restarts a send that shows none.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # "Send again to those who did not receive it": the recipients are the undelivered
    # of this campaign.
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends"
    )
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="campaign_account_created"),
            models.Index(
                fields=["status", "scheduled_at"],
                name="campaign_due",
                condition=Q(status="scheduled"),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignTarget(models.Model):
    """A list or a segment the campaign goes to, or (exclude) whose members it skips."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="targets")
    list = models.ForeignKey(
        List, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    exclude = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(list__isnull=False, segment__isnull=True)
                | Q(list__isnull=True, segment__isnull=False),
                name="target_list_xor_segment",
            )
        ]

    def __str__(self) -> str:
        return f"{'-' if self.exclude else '+'}{self.list_id or ''}{self.segment_id or ''}"


class Link(models.Model):
    """A link of a tracked campaign; a click token names its position, so a click can
    only ever lead to a URL the campaign contained."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    position = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="link_unique_position")
        ]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")  # waiting, or waiting for a retry (next_attempt_at)
    SENDING = "sending", _("Sending")  # claimed by a worker
    SENT = "sent", _("Sent")  # accepted by the relay
    FAILED = "failed", _("Failed")  # refused for good, or retries used up
    CANCELLED = "cancelled", _("Not sent")  # the campaign was cancelled first


class Delivery(models.Model):
    """One recipient of one campaign. Unique per campaign and address: one message per
    person, however many of the campaign's lists they are on."""

    id = models.BigAutoField(primary_key=True)
    # Every index and every deferred key check is paid once per recipient when a send
    # starts, before the recipient set is committed. So: no index of its own (the unique
    # `delivery_unique_email` leads with the campaign) and, on both keys, no database
    # constraint, whose check is a `SELECT … FOR KEY SHARE` per row and key at the commit
    # (0.6 s for the campaign, 0.9 s for the member at 100,000, and that one locked every
    # member's row). Django's collector still cascades a campaign's delete and sets the
    # member NULL when a member is deleted (every delete of either goes through the ORM);
    # the senders read members with a LEFT JOIN.
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    member = models.ForeignKey(
        Member,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        db_constraint=False,
    )
    email = models.CharField(max_length=254)
    # Empty for a campaign. For an autoresponder step, what this mail answers (a date
    # trigger's year, a signup's time…): one message per person and occurrence.
    occurrence = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "email", "occurrence"], name="delivery_unique_email"
            )
        ]
        indexes = [
            # The claim: the campaign's waiting rows in id order.
            models.Index(
                fields=["campaign", "id"],
                name="delivery_queued",
                condition=Q(status="queued"),
            ),
            models.Index(
                fields=["campaign", "claimed_at"],
                name="delivery_sending",
                condition=Q(status="sending"),
            ),
        ]

    def __str__(self) -> str:
        return self.email


class BounceKind(models.TextChoices):
    HARD = "hard", _("Hard bounce")
    SOFT = "soft", _("Soft bounce")
    COMPLAINT = "complaint", _("Complaint")


class Bounce(models.Model):
    """A bounce or complaint, from the relay's answer, a returned DSN or an ESP webhook."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="bounces"
    )
    delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="bounces"
    )
    email = models.CharField(max_length=254)
    kind = models.CharField(max_length=16, choices=BounceKind.choices)
    source = models.CharField(max_length=32)  # smtp, dsn, or the ESP's name
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"], name="bounce_account_created")]

    def __str__(self) -> str:
        return f"{self.kind} {self.email}"


class Unsubscribe(models.Model):
    """A member left a list: from the one-click header, the unsubscribe page, a mailto
    or the preferences page. Counted in the campaign's statistics."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="unsubscribes"
    )
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="unsubscribes"
    )
    list = models.ForeignKey(
        List, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=32)  # one-click, page, mailto, preferences
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # A list's growth over time (members/growth): its unsubscribes by day.
            models.Index(fields=["list", "created_at"], name="unsubscribe_list_time"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.member_id}"


from campaigns.models_autoresponders import *  # noqa: E402, F403 - the models of autoresponders
from campaigns.models_tracking import *  # noqa: E402, F403 - opens, clicks and their counters
