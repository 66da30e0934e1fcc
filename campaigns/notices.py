"""Mail to a campaign's owner about the campaign (sent from a worker, after commit)."""

from __future__ import annotations

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from accounts.models import User
from campaigns.models import Campaign, CampaignStatus
from heyloyalty.mail import build_message


def notify_paused(*, campaign_id: int) -> bool:
    """Tell the owners why the send stopped; False when it is no longer paused."""
    campaign = (
        Campaign.objects.select_related("account", "created_by").filter(pk=campaign_id).first()
    )
    if campaign is None or campaign.status != CampaignStatus.PAUSED:
        return False
    recipients = set(
        User.objects.filter(account=campaign.account, role="owner", is_active=True).values_list(
            "email", flat=True
        )
    )
    if campaign.created_by is not None and campaign.created_by.is_active:
        recipients.add(campaign.created_by.email)
    if not recipients:
        return False
    try:
        url = settings.PUBLIC_URL + reverse("campaigns:detail", args=[campaign.pk])
    except NoReverseMatch:
        url = settings.PUBLIC_URL
    text = (
        f"Your campaign “{campaign.name}” has been paused.\n\n"
        f"{campaign.status_reason}\n\n"
        "Nobody has been mailed twice and nobody has been skipped: when the cause is "
        f"fixed, resume the campaign and it carries on where it stopped.\n\n{url}\n"
    )
    build_message(
        to=sorted(recipients),
        subject=f"Campaign paused: {campaign.name}",
        text=text,
    ).send()
    return True
