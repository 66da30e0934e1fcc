"""The recipient set written in two steps: the first rows go out while the rest are
written, and the campaign cannot end before every row is there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Account
from campaigns.models import Campaign, CampaignStatus, CampaignTarget, Delivery, SenderDomain
from campaigns.pipeline import (
    _write_other_recipients,
    campaign_count_sent_mail,
    campaign_finish,
    campaign_prepare,
    campaign_start,
)
from members.models import List, Member
from members.services import MemberData, list_create, members_add
from tests.campaigns.pipeline_support import CountingSink, Workers, send_queue, wait_for

__all__ = ["send_queue"]  # a fixture


def _lists(account: Account) -> tuple[List, List]:
    """Two lists of 40 whose last 20 and first 20 are the same people."""
    SenderDomain.objects.get_or_create(account=account, domain="shop.example", verified=True)
    first = list_create(account=account, name="First")
    second = list_create(account=account, name="Second")
    members_add(
        member_list=first, members=(MemberData(email=f"p{i}@example.net") for i in range(40))
    )
    members_add(
        member_list=second,
        members=(MemberData(email=f"P{i}@Example.net") for i in range(20, 60)),
    )
    return first, second


def _campaign(account: Account, *lists: List) -> Campaign:
    campaign = Campaign.objects.create(
        account=account,
        name="Two lists",
        subject="Hi",
        from_email="news@shop.example",
        html="<p>Hi <a href='https://shop.example/'>shop</a></p>",
    )
    for member_list in lists:
        CampaignTarget.objects.create(campaign=campaign, list=member_list)
    return campaign


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(180)
def test_a_send_that_starts_before_its_recipients_are_written_reaches_each_once(
    live_personas, send_queue
):
    account = live_personas.account_a
    campaign = _campaign(account, *_lists(account))
    with CountingSink() as sink:
        # A first step of 7 rows: the rest, and the addresses on both lists, come after.
        workers = Workers(queue=send_queue, smtp_port=sink.port, SEND_FIRST_CHUNK="7")
        workers.start()
        try:
            campaign_start(campaign=campaign)
            wait_for(
                lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT,
                timeout=90,
                what="the campaign to end as sent",
            )
        finally:
            workers.stop()
        assert dict(sink.received) == {f"p{i}@example.net": 1 for i in range(60)}
    campaign.refresh_from_db()
    assert (campaign.recipients, campaign.sent, campaign.recipients_pending) == (60, 60, False)
    assert campaign.links.count() == 1  # written once, with the first rows
    assert "Traceback" not in workers.output, workers.output


@pytest.mark.django_db
def test_the_campaign_does_not_end_while_its_recipients_are_being_written(personas, settings):
    settings.SEND_FIRST_CHUNK = 5
    account = personas.account_a
    campaign = _campaign(account, _lists(account)[0])
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENDING, started_at=timezone.now()
    )
    campaign_prepare(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert (campaign.recipients, campaign.recipients_pending) == (40, False)
    # As if the first five were sent and the second step had not committed yet.
    Delivery.objects.filter(campaign=campaign).update(status="sent")
    Campaign.objects.filter(pk=campaign.pk).update(recipients_pending=True)
    assert campaign_finish(campaign_id=campaign.pk) is False
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENDING
    Campaign.objects.filter(pk=campaign.pk).update(recipients_pending=False)
    assert campaign_finish(campaign_id=campaign.pk) is True


@pytest.mark.django_db
def test_rows_written_after_a_cancel_are_cancelled_and_counted(personas, settings):
    settings.SEND_FIRST_CHUNK = 5
    account = personas.account_a
    campaign = _campaign(account, _lists(account)[0])
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENDING, started_at=timezone.now()
    )
    campaign_prepare(campaign_id=campaign.pk)
    # The second step was under way when the customer cancelled: its rows come in after
    # the cancel's own update of the queued rows.
    first = Delivery.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)
    Delivery.objects.filter(campaign=campaign).exclude(id__in=list(first[:5])).delete()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.CANCELLED, recipients=5, recipients_pending=True
    )
    Delivery.objects.filter(campaign=campaign).update(status="cancelled")
    _write_other_recipients(Campaign.objects.get(pk=campaign.pk))
    campaign.refresh_from_db()
    assert (campaign.recipients, campaign.recipients_pending) == (40, False)
    statuses = set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses == {"cancelled"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_the_reaper_finishes_a_recipient_set_whose_writer_died(live_personas, send_queue, settings):
    settings.SEND_FIRST_CHUNK = 5
    account = live_personas.account_a
    campaign = _campaign(account, _lists(account)[0])
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENDING, started_at=timezone.now()
    )
    campaign_prepare(campaign_id=campaign.pk)  # here, in the test: no worker hears of it
    # As if the process died after the first step: five rows, the rest never written.
    first = Delivery.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)
    Delivery.objects.filter(campaign=campaign).exclude(id__in=list(first[:5])).delete()
    long_ago = timezone.now() - timedelta(hours=1)
    Campaign.objects.filter(pk=campaign.pk).update(
        recipients=5, recipients_pending=True, heartbeat_at=long_ago
    )
    with CountingSink() as sink:
        workers = Workers(queue=send_queue, smtp_port=sink.port, concurrency=1)
        workers.start()  # with its beat: the reaper every second
        try:
            wait_for(
                lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT,
                timeout=60,
                what="the reaper to restart the send",
            )
        finally:
            workers.stop()
        assert dict(sink.received) == {f"p{i}@example.net": 1 for i in range(40)}
    campaign.refresh_from_db()
    assert (campaign.recipients, campaign.sent, campaign.recipients_pending) == (40, 40, False)


@pytest.mark.django_db
def test_sent_mail_is_counted_once_however_often_it_is_asked(personas, settings):
    account = personas.account_a
    member_list = _lists(account)[0]
    campaign = _campaign(account, member_list)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENDING, started_at=timezone.now()
    )
    campaign_prepare(campaign_id=campaign.pk)
    Delivery.objects.filter(campaign=campaign).update(status="sent")
    assert campaign_finish(campaign_id=campaign.pk) is True
    assert campaign_count_sent_mail(campaign_id=campaign.pk) is False  # done by the finish
    Campaign.objects.filter(pk=campaign.pk).update(sent_mail_pending=True)
    assert campaign_count_sent_mail(campaign_id=campaign.pk) is True  # as the reaper would
    assert campaign_count_sent_mail(campaign_id=campaign.pk) is False
    counts = set(Member.objects.filter(list=member_list).values_list("sent_mail", flat=True))
    assert counts == {2}  # once by the finish, once by the forced second count


@pytest.mark.django_db
def test_deliveries_follow_their_members_and_campaigns_without_database_keys(personas):
    """The keys have no database constraint (their checks were most of a send's start):
    every delete goes through the ORM, which does what ON DELETE did."""
    from members.services import list_delete, member_delete

    account = personas.account_a
    first, second = _lists(account)
    campaign = _campaign(account, first, second)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENDING, started_at=timezone.now()
    )
    campaign_prepare(campaign_id=campaign.pk)
    member_delete(member=Member.objects.get(list=first, email="p0@example.net"))
    assert Delivery.objects.get(campaign=campaign, email="p0@example.net").member_id is None
    list_delete(member_list=second)
    orphaned = Delivery.objects.filter(campaign=campaign, member__isnull=True).count()
    assert orphaned == 1 + 20  # p0, and p40..p59 who were only on the second list
    assert (
        not Delivery.objects.exclude(member__isnull=True)
        .exclude(member__in=Member.objects.all())
        .exists()
    )
    Campaign.objects.filter(pk=campaign.pk).delete()
    assert not Delivery.objects.filter(campaign_id=campaign.pk).exists()
