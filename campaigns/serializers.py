"""Campaigns and deliveries as the API shows them (our additions, DESIGN.md), and the
shapes the OpenAPI schema documents for them.

Times are ISO 8601 with the offset of the account's time zone.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from rest_framework import serializers

from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from campaigns.pipeline import Progress
from campaigns.selectors import Targets


def iso(moment: datetime | None, tz: str) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(zoneinfo.ZoneInfo(tz)).isoformat(timespec="seconds")


def counter_progress(campaign: Campaign) -> int:
    """The percentage from the campaign's own counters: no query, for lists of them."""
    if campaign.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        return 100
    if not campaign.recipients:
        return 0
    return min(99, (campaign.sent + campaign.failed) * 100 // campaign.recipients)


def campaign_summary(campaign: Campaign) -> dict[str, Any]:
    """A campaign in a list: no bodies, counters as the pipeline keeps them."""
    tz = campaign.account.timezone
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "status": campaign.status,
        "subject": campaign.subject,
        "from_name": campaign.from_name,
        "from_email": campaign.from_email,
        "recipients": campaign.recipients,
        "sent": campaign.sent,
        "failed": campaign.failed,
        "progress": counter_progress(campaign),
        "scheduled_at": iso(campaign.scheduled_at, tz),
        "started_at": iso(campaign.started_at, tz),
        "finished_at": iso(campaign.finished_at, tz),
        "created_at": iso(campaign.created_at, tz),
        "updated_at": iso(campaign.updated_at, tz),
    }


def campaign_json(
    campaign: Campaign,
    *,
    targets: Targets,
    progress: Progress,
    statistics: dict[str, int | float],
    problems: dict[str, str] | None,
) -> dict[str, Any]:
    """One campaign with everything: content, targets, progress and statistics.
    ``problems`` (drafts only) names what stops it from being sent."""
    return {
        **campaign_summary(campaign),
        "preheader": campaign.preheader,
        "reply_to": campaign.reply_to,
        "html": campaign.html,
        "text": campaign.text,
        "tracking": campaign.tracking,
        "list_ids": list(targets.list_ids),
        "segment_ids": list(targets.segment_ids),
        "exclude_list_ids": list(targets.exclude_list_ids),
        "exclude_segment_ids": list(targets.exclude_segment_ids),
        "resend_of": campaign.resend_of_id,
        "status_reason": campaign.status_reason or None,
        "recipients": progress.recipients,
        "sent": progress.sent,
        "failed": progress.failed,
        "waiting": progress.waiting,
        "progress": progress.percent,
        "statistics": {"sent": progress.sent, "failed": progress.failed, **statistics},
        "problems": problems,
    }


def delivery_json(delivery: Delivery, tz: str) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "email": delivery.email,
        "member_id": str(delivery.member_id) if delivery.member_id else None,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "error": delivery.error or None,
        "sent_at": iso(delivery.sent_at, tz),
    }


# -- the OpenAPI schema's shapes (documentation only: the views read input with the
# shared params extractor, which also takes form and multipart bodies) ---------------


class _Ids(serializers.ListField):
    def __init__(self, help_text: str, **kwargs: Any) -> None:
        super().__init__(child=serializers.IntegerField(), help_text=help_text, **kwargs)


class CampaignWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text="Required when creating.")
    subject = serializers.CharField(
        required=False, help_text='Merge tags allowed: `{{ firstname | default: "friend" }}`.'
    )
    preheader = serializers.CharField(required=False)
    from_name = serializers.CharField(required=False)
    from_email = serializers.EmailField(
        required=False, help_text="On one of the account's verified sender domains."
    )
    reply_to = serializers.EmailField(required=False)
    html = serializers.CharField(required=False, help_text="The HTML body, with merge tags.")
    text = serializers.CharField(
        required=False, help_text="The text body; generated from the HTML when empty."
    )
    tracking = serializers.BooleanField(required=False, default=True)
    list_ids = _Ids("The account's lists to send to.", required=False)
    segment_ids = _Ids("The account's segments to send to.", required=False)
    exclude_list_ids = _Ids("Addresses on these lists are skipped.", required=False)
    exclude_segment_ids = _Ids("Addresses in these segments are skipped.", required=False)


class CampaignSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField(help_text=" | ".join(CampaignStatus.values))
    subject = serializers.CharField()
    from_name = serializers.CharField()
    from_email = serializers.CharField()
    recipients = serializers.IntegerField(help_text="Fixed when the send starts.")
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    progress = serializers.IntegerField(help_text="Percent of the recipients done.")
    scheduled_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CampaignListSerializer(serializers.Serializer):
    campaigns = CampaignSummarySerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    perpage = serializers.IntegerField()


class StatisticsSerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    delivered = serializers.IntegerField(help_text="Sent, less hard and soft bounces.")
    hard_bounces = serializers.IntegerField()
    soft_bounces = serializers.IntegerField()
    complaints = serializers.IntegerField()
    unsubscribes = serializers.IntegerField()
    opens = serializers.IntegerField(help_text="Opens by people, every one.")
    unique_opens = serializers.IntegerField(
        help_text="Messages a person opened (a click counts as an open)."
    )
    clicks = serializers.IntegerField(help_text="Clicks by people, every one.")
    unique_clicks = serializers.IntegerField(help_text="Messages in which a person clicked.")
    machine_opens = serializers.IntegerField(
        help_text="Opens by machines: mail privacy proxies, prefetching at delivery."
    )
    unique_machine_opens = serializers.IntegerField()
    machine_clicks = serializers.IntegerField(help_text="Clicks by link scanners and robots.")
    unique_machine_clicks = serializers.IntegerField()
    open_rate = serializers.FloatField(help_text="unique_opens of delivered, in percent.")
    click_rate = serializers.FloatField(help_text="unique_clicks of delivered, in percent.")
    click_to_open_rate = serializers.FloatField(help_text="unique_clicks of unique_opens, %.")
    machine_open_rate = serializers.FloatField()
    machine_click_rate = serializers.FloatField()
    bounce_rate = serializers.FloatField(help_text="Hard and soft bounces of sent, in percent.")
    unsubscribe_rate = serializers.FloatField()
    complaint_rate = serializers.FloatField()


class CampaignSerializer(CampaignSummarySerializer):
    preheader = serializers.CharField()
    reply_to = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()
    tracking = serializers.BooleanField()
    list_ids = _Ids("Target lists.")
    segment_ids = _Ids("Target segments.")
    exclude_list_ids = _Ids("Excluded lists.")
    exclude_segment_ids = _Ids("Excluded segments.")
    resend_of = serializers.IntegerField(
        allow_null=True, help_text="The campaign whose undelivered recipients this one goes to."
    )
    status_reason = serializers.CharField(allow_null=True)
    waiting = serializers.IntegerField(help_text="Recipients queued or being sent.")
    statistics = StatisticsSerializer()
    problems = serializers.DictField(
        child=serializers.CharField(),
        allow_null=True,
        help_text="Drafts only: what stops the campaign from being sent, by field.",
    )


class SendSerializer(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(
        required=False,
        help_text="ISO 8601. Without an offset it is the account's local time. "
        "Leave out to send now.",
    )


class TestSendSerializer(serializers.Serializer):
    emails = serializers.ListField(
        child=serializers.EmailField(), help_text="One to ten addresses (or one, comma-separated)."
    )
    member_id = serializers.UUIDField(
        required=False, help_text="Render the message as this member; else with fallbacks."
    )


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.CharField()
    member_id = serializers.UUIDField(allow_null=True)
    status = serializers.CharField(help_text=" | ".join(DeliveryStatus.values))
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_null=True, help_text="Why it failed or was not sent.")
    sent_at = serializers.DateTimeField(allow_null=True)


class DeliveryListSerializer(serializers.Serializer):
    deliveries = DeliverySerializer(many=True)
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="Recipients per status."
    )
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    perpage = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    member_id = serializers.UUIDField(allow_null=True)
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


# Built with type(): a field named "errors" would clash with Serializer.errors in a class
# body (for the type checker; DRF itself moves declared fields off the class).
ErrorSerializer = type(
    "ErrorSerializer",
    (serializers.Serializer,),
    {
        "error": serializers.CharField(),
        "field": serializers.CharField(required=False, help_text="The parameter at fault."),
        "errors": serializers.DictField(
            child=serializers.CharField(),
            required=False,
            help_text="Every problem found, by field (when there are several).",
        ),
    },
)


class NotFoundSerializer(serializers.Serializer):
    code = serializers.IntegerField()
    message = serializers.CharField()
