"""Opens and clicks: the events as they came, and the counters statistics are read from.

The open pixel and the click redirect push each hit onto a Redis list; the flusher
(campaigns/tracking_writer.py) writes them here in batches. ``TrackingEvent`` keeps every
hit, for the member's timeline and for webhooks; nothing that draws a statistics page
reads it. The pages read the counters and roll-ups below, which the flusher updates in
the same transaction as it inserts the events, from the rows actually inserted: a batch
written twice inserts nothing the second time and so counts nothing.

"Machine" events (a mail privacy proxy fetching images, a link scanner clicking every
link) are counted apart from human ones everywhere (campaigns/tracking_machine.py).

Ids of deliveries, campaigns and members are plain columns, not foreign keys: an insert
checks no constraint, and deleting a campaign's rows never has Django walk millions of
events. The roll-ups per campaign do have foreign keys (a handful of rows per campaign).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = [
    "CampaignHourly",
    "CampaignStats",
    "DeliveryActivity",
    "LinkStats",
    "MemberActivity",
    "TrackingEvent",
    "TrackingKind",
]

USER_AGENT_MAX = 300


class TrackingKind(models.TextChoices):
    OPEN = "open", _("Open")
    CLICK = "click", _("Click")


class TrackingEvent(models.Model):
    """One hit on the pixel or on a tracked link."""

    id = models.BigAutoField(primary_key=True)
    # Made when the hit is answered (time-ordered, so the index fills at its end): the
    # same event written twice (a replayed batch, a push that timed out and was written
    # directly) is inserted once.
    event_id = models.UUIDField(unique=True)
    delivery_id = models.BigIntegerField()
    campaign_id = models.BigIntegerField()
    member_id = models.UUIDField(null=True, blank=True)
    kind = models.CharField(max_length=5, choices=TrackingKind.choices)
    position = models.PositiveIntegerField(null=True, blank=True)  # clicks: the link
    machine = models.BooleanField(default=False)
    # Truncated to its /24 (IPv4) or /48 (IPv6) network: enough to tell a proxy's
    # network, not a person's address.
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["member_id", "-created_at"], name="trackingevent_member"),
            models.Index(fields=["campaign_id", "created_at"], name="trackingevent_campaign"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.delivery_id}"


class DeliveryActivity(models.Model):
    """What one recipient did first: the row that makes opens and clicks unique.

    Only deliveries that were opened or clicked have one. A human click counts as an
    open too (``opened_at``), as mail services count it: the images may have been off.
    """

    delivery_id = models.BigIntegerField(primary_key=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    machine_opened_at = models.DateTimeField(null=True, blank=True)
    machine_clicked_at = models.DateTimeField(null=True, blank=True)
    # The links a person clicked (positions): unique clicks per link.
    positions = ArrayField(models.PositiveIntegerField(), default=list, blank=True)
    # The last click of anyone: a scanner clicks several links within the same second.
    last_click_at = models.DateTimeField(null=True, blank=True)
    last_click_position = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name_plural = _("delivery activity")

    def __str__(self) -> str:
        return str(self.delivery_id)


class CampaignStats(models.Model):
    """A campaign's opens and clicks, human and machine apart; one row per campaign
    that had any. Bounces, complaints and unsubscribes have their own small tables."""

    campaign = models.OneToOneField(
        "campaigns.Campaign", primary_key=True, on_delete=models.CASCADE, related_name="stats"
    )
    opens = models.PositiveBigIntegerField(default=0)
    unique_opens = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    unique_clicks = models.PositiveBigIntegerField(default=0)
    machine_opens = models.PositiveBigIntegerField(default=0)
    unique_machine_opens = models.PositiveBigIntegerField(default=0)
    machine_clicks = models.PositiveBigIntegerField(default=0)
    unique_machine_clicks = models.PositiveBigIntegerField(default=0)
    # When the open rates of the campaign's recipients were last recomputed after the
    # send finished (their sent_mail grew by one then).
    member_rates_at = models.DateTimeField(null=True, blank=True)
    # The recipients per delivery status once the send is over (they change no more):
    # counted once instead of on every view of the report. ``counts_finished_at`` is the
    # campaign's finished_at they were counted for.
    delivery_counts = models.JSONField(null=True, blank=True)
    counts_finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = _("campaign statistics")

    def __str__(self) -> str:
        return str(self.campaign_id)


class LinkStats(models.Model):
    """Clicks on one link of a campaign."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="link_stats"
    )
    position = models.PositiveIntegerField()
    clicks = models.PositiveBigIntegerField(default=0)
    unique_clicks = models.PositiveBigIntegerField(default=0)
    machine_clicks = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = _("link statistics")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="linkstats_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.position}"


class CampaignHourly(models.Model):
    """Opens and clicks of a campaign in one hour (UTC); days are summed from hours."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="hourly"
    )
    hour = models.DateTimeField()
    opens = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    machine_opens = models.PositiveBigIntegerField(default=0)
    machine_clicks = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = _("campaign hourly statistics")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "hour"], name="campaignhourly_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.hour:%Y-%m-%d %H}h"


class MemberActivity(models.Model):
    """How many of a member's mails a person opened and clicked: Member.open_rate is
    ``opened`` of the member's ``sent_mail``."""

    member_id = models.UUIDField(primary_key=True)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = _("member activity")

    def __str__(self) -> str:
        return str(self.member_id)
