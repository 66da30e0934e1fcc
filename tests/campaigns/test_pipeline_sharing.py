"""Fair sharing and rate limits: one customer's big campaign does not hold up another's
small one, and an account's rate limit holds across workers."""

from __future__ import annotations

import time

import pytest

from accounts.models import Account
from campaigns.models import Campaign, CampaignStatus, CampaignTarget, Delivery, SenderDomain
from campaigns.pipeline import campaign_start
from members.services import MemberData, list_create, members_add
from tests.campaigns.pipeline_support import CountingSink, Workers, send_queue, wait_for

__all__ = ["send_queue"]  # a fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _campaign(account: Account, domain: str, count: int, prefix: str) -> Campaign:
    SenderDomain.objects.get_or_create(account=account, domain=domain, verified=True)
    member_list = list_create(account=account, name=f"{prefix} list")
    members_add(
        member_list=member_list,
        members=(MemberData(email=f"{prefix}{i}@example.net") for i in range(count)),
    )
    campaign = Campaign.objects.create(
        account=account,
        name=prefix,
        subject="Hi",
        from_email=f"news@{domain}",
        html="<p>Hi {{ email }}</p>",
        tracking=False,
    )
    CampaignTarget.objects.create(campaign=campaign, list=member_list)
    return campaign


def _sent(campaign: Campaign) -> bool:
    return Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT


def test_a_small_campaign_is_not_stuck_behind_another_accounts_big_one(live_personas, send_queue):
    big = _campaign(live_personas.account_a, "a.example", 4000, "big")
    small = _campaign(live_personas.account_b, "b.example", 20, "small")
    with CountingSink() as sink:
        workers = Workers(
            queue=send_queue,
            smtp_port=sink.port,
            concurrency=1,
            SEND_TASK_SECONDS="1",
            SEND_PARALLELISM="2",
            # Unlimited, the big one is over in about two seconds, sooner than the turns
            # (of a second each) let the small one in: slow it to ten seconds (the limit is
            # per account, so the small one's account is not slowed by it).
            SEND_RATE_PER_ACCOUNT="400",
        )
        workers.start()
        try:
            campaign_start(campaign=big)
            wait_for(lambda: sink.total >= 200, timeout=60, what="the big send to be going")
            campaign_start(campaign=small)
            wait_for(lambda: _sent(small), timeout=60, what="the small campaign")
            big_sent_when_small_done = sink.total - 20
            wait_for(lambda: _sent(big), timeout=120, what="the big campaign")
        finally:
            workers.stop()
    # The small one went out in the big one's stride, not after it.
    assert big_sent_when_small_done < 4000 * 3 // 4
    assert "Traceback" not in workers.output, workers.output


def test_the_accounts_rate_limit_holds_across_workers(live_personas, send_queue):
    campaign = _campaign(live_personas.account_a, "a.example", 250, "rated")
    with CountingSink() as sink:
        workers = Workers(
            queue=send_queue, smtp_port=sink.port, concurrency=2, SEND_RATE_PER_ACCOUNT="50"
        )
        workers.start()
        try:
            campaign_start(campaign=campaign)
            wait_for(lambda: sink.total >= 1, timeout=30, what="the first message")
            first = time.monotonic()
            wait_for(lambda: _sent(campaign), timeout=60, what="the campaign")
            took = time.monotonic() - first
        finally:
            workers.stop()
    # 250 messages at 50 a second take five one-second windows: the last one starts at
    # least three seconds after the first message, however late in its window that was.
    assert took >= 3.0, took
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == 250
