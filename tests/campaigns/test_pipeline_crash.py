"""No recipient lost, no one mailed twice: 20,000 recipients through real Celery workers
to a real SMTP server, the workers killed with SIGKILL half way, or the campaign paused
and resumed five times."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from campaigns.models import Campaign, CampaignStatus, CampaignTarget, Delivery, SenderDomain
from campaigns.pipeline import campaign_pause, campaign_resume, campaign_start
from members.services import MemberData, list_create, members_add
from tests.campaigns.pipeline_support import CountingSink, Workers, send_queue, wait_for

__all__ = ["send_queue"]  # a fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

RECIPIENTS = 20_000


def _big_campaign(personas, count: int = RECIPIENTS) -> Campaign:
    account = personas.alice.account
    SenderDomain.objects.create(account=account, domain="shop.example", verified=True)
    member_list = list_create(account=account, name="Everyone")
    members_add(
        member_list=member_list,
        members=(MemberData(email=f"m{i}@example.net", firstname=f"M{i}") for i in range(count)),
    )
    campaign = Campaign.objects.create(
        account=account,
        name="Big",
        subject="Hello {{ firstname }}",
        from_name="Shop",
        from_email="news@shop.example",
        html="<html><body><p>Hi {{ firstname }}</p><a href='https://shop.example/x'>x</a></body></html>",
        created_by=personas.alice,
    )
    CampaignTarget.objects.create(campaign=campaign, list=member_list)
    return campaign


def _in_flight(campaign: Campaign, sink: CountingSink) -> set[str]:
    """Rows a killed worker had claimed whose message the server has: in flight."""
    claimed = Delivery.objects.filter(campaign=campaign, status="sending").values_list(
        "email", flat=True
    )
    return {email for email in claimed if sink.received[email]}


def _check_everyone_once(campaign: Campaign, sink: CountingSink, allowed: set[str]) -> None:
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT, campaign.status_reason
    expected = {f"m{i}@example.net" for i in range(RECIPIENTS)}
    missing = expected - set(sink.received)
    assert not missing, f"{len(missing)} recipients never received it"
    twice = {email for email, n in sink.received.items() if n > 1}
    assert twice <= allowed, f"mailed twice but not in flight at the kill: {twice - allowed}"
    assert campaign.sent == RECIPIENTS
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == RECIPIENTS


def test_killing_every_worker_half_way_loses_no_one(live_personas, send_queue):
    campaign = _big_campaign(live_personas)
    with CountingSink() as sink:
        workers = Workers(queue=send_queue, smtp_port=sink.port)
        workers.start()
        try:
            campaign_start(campaign=campaign)
            wait_for(lambda: sink.total >= RECIPIENTS // 2, timeout=120, what="half the mail")
            workers.kill()
            in_flight = _in_flight(campaign, sink)
            received_at_kill = sink.total
            assert received_at_kill < RECIPIENTS, "the send was over before the kill"
            # At most SEND_MARK_BATCH messages per worker process are between the relay's
            # answer and their mark.
            assert len(in_flight) <= workers.concurrency * settings.SEND_MARK_BATCH
            workers.start()
            wait_for(
                lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT,
                timeout=180,
                what="the campaign to end as sent",
            )
        finally:
            workers.stop()
        _check_everyone_once(campaign, sink, in_flight)
    assert "Traceback" not in workers.output, workers.output


def test_pausing_and_resuming_five_times_mails_everyone_exactly_once(live_personas, send_queue):
    campaign = _big_campaign(live_personas)
    with CountingSink() as sink:
        workers = Workers(queue=send_queue, smtp_port=sink.port)
        workers.start()
        try:
            campaign_start(campaign=campaign)
            for round_no in range(1, 6):
                share = round_no * RECIPIENTS // 7
                wait_for(
                    lambda share=share: sink.total >= share,  # type: ignore[misc]
                    timeout=120,
                    what=f"pause number {round_no}",
                )
                campaign_pause(campaign=campaign)
                # Paused: within a moment every worker has let go of its rows.
                wait_for(
                    lambda: (
                        not Delivery.objects.filter(campaign=campaign, status="sending").exists()
                    ),
                    timeout=30,
                    what="the workers to stop",
                )
                stopped_at = sink.total
                assert sink.total < RECIPIENTS
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_sleep(0.3)")
                assert sink.total == stopped_at, "mail went out while paused"
                campaign_resume(campaign=campaign)
            wait_for(
                lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT,
                timeout=180,
                what="the campaign to end as sent",
            )
        finally:
            workers.stop()
        _check_everyone_once(campaign, sink, allowed=set())
    assert "Traceback" not in workers.output, workers.output
