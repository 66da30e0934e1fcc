"""“Send again to those who did not receive it”: the copy's recipients are exactly the
original's undelivered, minus whoever may no longer be mailed."""

from __future__ import annotations

import pytest

from campaigns.errors import CampaignError
from campaigns.models import Campaign, CampaignTarget, Delivery, SenderDomain
from campaigns.pipeline import campaign_cancel, campaign_prepare, campaign_resend, campaign_start
from members.models import Member, MemberStatus
from members.services import MemberData, list_create, members_add

pytestmark = pytest.mark.django_db


def _recipients(campaign: Campaign) -> set[str]:
    return set(Delivery.objects.filter(campaign=campaign).values_list("email", flat=True))


def test_sending_again_goes_only_to_those_who_did_not_receive_it(personas):
    account = personas.account_a
    SenderDomain.objects.create(account=account, domain="shop.example", verified=True)
    member_list = list_create(account=account, name="Main")
    members_add(
        member_list=member_list,
        members=[MemberData(email=f"m{i}@example.net") for i in range(6)],
    )
    campaign = Campaign.objects.create(
        account=account, name="Sale", subject="Sale", from_email="news@shop.example", html="x"
    )
    CampaignTarget.objects.create(campaign=campaign, list=member_list)
    with pytest.raises(CampaignError):
        campaign_resend(campaign=campaign)  # a draft has nobody who missed it
    campaign_start(campaign=campaign)
    campaign_prepare(campaign_id=campaign.pk)
    assert len(_recipients(campaign)) == 6
    deliveries = Delivery.objects.filter(campaign=campaign)
    deliveries.filter(email__in=["m0@example.net", "m1@example.net"]).update(status="sent")
    deliveries.filter(email="m2@example.net").update(status="failed", error="452 full")
    deliveries.filter(email="m3@example.net").update(status="failed", error="550 no such user")
    Member.objects.filter(email="m3@example.net").update(email_status=MemberStatus.BOUNCED)
    Member.objects.filter(email="m4@example.net").update(
        status=MemberStatus.UNSUBSCRIBED, email_status=MemberStatus.UNSUBSCRIBED
    )
    campaign_cancel(campaign=campaign)  # m4 and m5 were still waiting

    again = campaign_resend(campaign=campaign, user=personas.alice)
    assert again.status == "draft" and again.resend_of == campaign
    assert again.name == "Sale (again)"
    campaign_start(campaign=again)
    campaign_prepare(campaign_id=again.pk)
    # m2 failed and may be tried again; m3 bounced and m4 left the list since.
    assert _recipients(again) == {"m2@example.net", "m5@example.net"}
