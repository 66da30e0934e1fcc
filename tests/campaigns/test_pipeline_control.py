"""The send's state machine with real workers: scheduling, cancelling, a relay that is
down, and the pause after too many refusals in a row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Account
from campaigns.errors import CampaignError
from campaigns.models import Campaign, CampaignStatus, CampaignTarget, Delivery, SenderDomain
from campaigns.pipeline import campaign_cancel, campaign_pause, campaign_resume, campaign_start
from members.services import MemberData, list_create, members_add
from tests.campaigns.pipeline_support import CountingSink, Workers, send_queue, wait_for

__all__ = ["send_queue"]  # a fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _campaign(account: Account, count: int) -> Campaign:
    SenderDomain.objects.get_or_create(account=account, domain="shop.example", verified=True)
    member_list = list_create(account=account, name=f"List of {count}")
    members_add(
        member_list=member_list,
        members=(MemberData(email=f"r{i}@example.net") for i in range(count)),
    )
    campaign = Campaign.objects.create(
        account=account,
        name="C",
        subject="Hi",
        from_email="news@shop.example",
        html="<p>Hi</p>",
    )
    CampaignTarget.objects.create(campaign=campaign, list=member_list)
    return campaign


def _status(campaign: Campaign) -> str:
    return Campaign.objects.get(pk=campaign.pk).status


def test_a_scheduled_campaign_goes_out_when_its_time_comes(live_personas, send_queue):
    campaign = _campaign(live_personas.account_a, 5)
    with pytest.raises(CampaignError) as error:
        campaign_start(campaign=campaign, at=timezone.now() - timedelta(minutes=1))
    assert "scheduled_at" in error.value.errors
    campaign_start(campaign=campaign, at=timezone.now() + timedelta(seconds=3))
    assert _status(campaign) == CampaignStatus.SCHEDULED
    with CountingSink() as sink:
        workers = Workers(queue=send_queue, smtp_port=sink.port, concurrency=1)
        workers.start()
        try:
            wait_for(lambda: _status(campaign) == CampaignStatus.SENT, timeout=60, what="sent")
        finally:
            workers.stop()
        assert sink.total == 5
    campaign.refresh_from_db()
    assert campaign.started_at and campaign.scheduled_at
    assert campaign.started_at >= campaign.scheduled_at


def test_cancelling_stops_the_send_and_says_who_was_not_sent_it(live_personas, send_queue):
    campaign = _campaign(live_personas.account_a, 3000)
    with CountingSink() as sink:
        workers = Workers(queue=send_queue, smtp_port=sink.port, concurrency=1)
        workers.start()
        try:
            campaign_start(campaign=campaign)
            wait_for(lambda: sink.total >= 100, timeout=60, what="the send to be going")
            campaign_cancel(campaign=campaign)
            wait_for(
                lambda: not Delivery.objects.filter(campaign=campaign, status="sending").exists(),
                timeout=30,
                what="the workers to let go",
            )
            sent_then = sink.total
            with pytest.raises(CampaignError):
                campaign_pause(campaign=campaign)
        finally:
            workers.stop()
        assert sink.total == sent_then < 3000
    deliveries = Delivery.objects.filter(campaign=campaign)
    assert deliveries.filter(status="sent").count() == sent_then
    assert deliveries.filter(status="cancelled").count() == 3000 - sent_then
    assert _status(campaign) == CampaignStatus.CANCELLED


def test_a_relay_that_is_down_makes_the_send_wait_and_loses_nothing(live_personas, send_queue):
    campaign = _campaign(live_personas.account_a, 50)
    sink = CountingSink()  # its port is chosen, nothing listens on it yet
    workers = Workers(queue=send_queue, smtp_port=sink.port, concurrency=1)
    workers.start()
    try:
        campaign_start(campaign=campaign)
        wait_for(
            lambda: "relay" in Campaign.objects.get(pk=campaign.pk).status_reason,
            timeout=30,
            what="the send to notice the relay is down",
        )
        assert _status(campaign) == CampaignStatus.SENDING
        assert not Delivery.objects.filter(campaign=campaign, status="failed").exists()
        with sink:
            wait_for(lambda: _status(campaign) == CampaignStatus.SENT, timeout=60, what="sent")
            assert sink.total == 50
    finally:
        workers.stop()
    assert Delivery.objects.filter(campaign=campaign, status="sent", attempts=1).count() == 50


def test_too_many_refusals_in_a_row_pause_the_campaign_and_tell_its_owner(
    live_personas, send_queue
):
    campaign = _campaign(live_personas.account_a, 40)
    campaign.created_by = live_personas.alice
    campaign.save()
    with CountingSink() as sink:
        for i in range(40):
            sink.refuse[f"r{i}@example.net"] = "554 5.7.1 Rejected: policy"
        workers = Workers(
            queue=send_queue, smtp_port=sink.port, concurrency=1, SEND_FAILURES_IN_ROW="10"
        )
        workers.start()
        try:
            campaign_start(campaign=campaign)
            wait_for(lambda: _status(campaign) == CampaignStatus.PAUSED, timeout=60, what="pause")
            wait_for(
                lambda: sink.received[live_personas.alice.email.lower()] == 1,
                timeout=30,
                what="the owner's notice",
            )
            reason = Campaign.objects.get(pk=campaign.pk).status_reason
            assert "10 recipients in a row" in reason and "554 5.7.1" in reason
            assert Delivery.objects.filter(campaign=campaign, status="failed").count() == 10
            # Resumed after the cause is fixed, it carries on with the rest.
            sink.refuse.clear()
            campaign_resume(campaign=Campaign.objects.get(pk=campaign.pk))
            wait_for(lambda: _status(campaign) == CampaignStatus.SENT, timeout=60, what="sent")
        finally:
            workers.stop()
        assert sink.total - 1 == 30  # the rest, plus the owner's notice counted above
    notice = sink.last[live_personas.alice.email.lower()].decode()
    assert "has been paused" in notice
