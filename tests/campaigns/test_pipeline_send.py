"""A campaign through real Celery workers to a real SMTP server: who gets it, what they
get, and what the relay's 4xx and 5xx answers do."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from django.test import Client

from campaigns import tokens
from campaigns.models import (
    Bounce,
    Campaign,
    CampaignStatus,
    CampaignTarget,
    Delivery,
    SenderDomain,
)
from campaigns.pipeline import campaign_start
from members.models import Member, MemberStatus
from members.segments import segment_create
from members.selectors import Group
from members.services import list_create, member_create
from tests.campaigns.pipeline_support import CountingSink, Workers, send_queue, wait_for

__all__ = ["send_queue"]  # a fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

HTML = """<html><body>
<h1>Hej {{ firstname | default: "ven" }}</h1>
<a href="https://shop.example/sale">Sale</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body></html>"""


@pytest.fixture
def sink():
    with CountingSink() as server:
        yield server


@pytest.fixture
def workers(send_queue, sink):
    running = Workers(queue=send_queue, smtp_port=sink.port, concurrency=1)
    running.start()
    yield running
    running.stop()
    assert "Traceback" not in running.output, running.output


def _member(member_list, address, status=MemberStatus.ACTIVE, **values):
    member = member_create(member_list=member_list, values={"email": address, **values})
    if status != MemberStatus.ACTIVE:
        Member.objects.filter(pk=member.pk).update(status=status, email_status=status)
    return member


@pytest.fixture
def audience(live_personas):
    account = live_personas.alice.account
    SenderDomain.objects.create(account=account, domain="shop.example", verified=True)
    main = list_create(account=account, name="Main")
    other = list_create(account=account, name="Other")
    _member(main, "ann@example.net", firstname="Ann")
    _member(main, "Both@example.net", firstname="Bo")
    _member(main, "cy@example.net")  # no first name: the fallback
    _member(main, "gone@example.net", MemberStatus.UNSUBSCRIBED, firstname="Gone")
    _member(main, "bad@example.net", MemberStatus.BOUNCED)
    _member(main, "new@example.net", MemberStatus.UNCONFIRMED)
    _member(other, "both@example.net", firstname="Bo again")  # also on main: once
    _member(other, "seg@example.net", firstname="Seg")
    _member(other, "notseg@example.net", firstname="Nope")
    segment = segment_create(
        member_list=other,
        name="S",
        rules=Group.from_flat({"firstname": {"sw": ["Seg", "Bo"]}}, "or"),
    )
    return account, main, other, segment


def _campaign(account, user, targets, **fields) -> Campaign:
    campaign = Campaign.objects.create(
        account=account,
        name="Spring",
        subject='Hej {{ firstname | default: "ven" }}, æøå',
        from_name="Søren's Shop",
        from_email="news@shop.example",
        html=HTML,
        created_by=user,
        **fields,
    )
    for target in targets:
        CampaignTarget.objects.create(campaign=campaign, **target)
    return campaign


def _part(message: email.message.EmailMessage, kind: str) -> str:
    body = message.get_body((kind,))
    assert body is not None, f"no {kind} part"
    return str(body.get_content())


def _wait_until_sent(campaign: Campaign) -> Campaign:
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT,
        timeout=60,
        what="the campaign to be sent",
    )
    campaign.refresh_from_db()
    return campaign


def test_a_campaign_to_a_list_and_a_segment_reaches_every_active_member_once(
    audience, live_personas, sink, workers
):
    account, main, _, segment = audience
    campaign = _campaign(account, live_personas.alice, [{"list": main}, {"segment": segment}])
    campaign_start(campaign=campaign)
    campaign = _wait_until_sent(campaign)

    assert dict(sink.received) == {
        "ann@example.net": 1,
        "both@example.net": 1,
        "cy@example.net": 1,
        "seg@example.net": 1,
    }
    assert (campaign.recipients, campaign.sent, campaign.failed) == (4, 4, 0)
    message = email.message_from_bytes(sink.last["ann@example.net"], policy=email.policy.default)
    assert message["Subject"] == "Hej Ann, æøå"
    assert message["From"].addresses[0].display_name == "Søren's Shop"
    assert message["Message-ID"]
    unsubscribe = message["List-Unsubscribe"]
    assert re.search(r"<https?://[^>]+/u/[\w-]+>", unsubscribe)
    assert "<mailto:unsubscribe+" in unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = _part(message, "plain")
    html = _part(message, "html")
    assert "Hej Ann" in text and "Hej Ann" in html
    # The tracked link names this recipient's delivery and the link's position.
    delivery = Delivery.objects.get(campaign=campaign, email="ann@example.net")
    click = re.search(r"/c/([\w-]+)", html)
    assert click and tokens.click_read(click.group(1)) == (delivery.pk, 0)
    opened = re.search(r"/o/([\w-]+)\.gif", html)
    assert opened and tokens.open_read(opened.group(1)) == delivery.pk
    fallback = email.message_from_bytes(sink.last["cy@example.net"], policy=email.policy.default)
    assert fallback["Subject"] == "Hej ven, æøå"
    # Counted right after the status turns sent, in a transaction of its own.
    wait_for(
        lambda: not Campaign.objects.filter(pk=campaign.pk, sent_mail_pending=True).exists(),
        timeout=10,
        what="sent_mail to be counted",
    )
    assert Member.objects.get(list=main, email="ann@example.net").sent_mail == 1


def test_an_excluded_list_or_segment_keeps_its_members_out(audience, live_personas, sink, workers):
    account, main, _, segment = audience
    campaign = _campaign(
        account, live_personas.alice, [{"list": main}, {"segment": segment, "exclude": True}]
    )
    campaign_start(campaign=campaign)
    _wait_until_sent(campaign)
    assert set(sink.received) == {"ann@example.net", "cy@example.net"}


def test_a_4xx_is_tried_again_and_a_5xx_fails_and_bounces_the_member(
    audience, live_personas, sink, workers
):
    account, main, _, _ = audience
    sink.refuse["ann@example.net"] = "450 4.2.1 Mailbox busy, try later"
    sink.refuse_times["ann@example.net"] = 2
    sink.refuse["cy@example.net"] = "550 5.1.1 No such user"
    campaign = _campaign(account, live_personas.alice, [{"list": main}])
    campaign_start(campaign=campaign)
    campaign = _wait_until_sent(campaign)

    ann = Delivery.objects.get(campaign=campaign, email="ann@example.net")
    assert (ann.status, ann.attempts, sink.received["ann@example.net"]) == ("sent", 3, 1)
    cy = Delivery.objects.get(campaign=campaign, email="cy@example.net")
    assert cy.status == "failed"
    assert "550 5.1.1 No such user" in cy.error
    assert sink.received["cy@example.net"] == 0
    assert Member.objects.get(list=main, email="cy@example.net").email_status == "bounced"
    assert Bounce.objects.filter(email="cy@example.net", kind="hard").exists()
    assert (campaign.sent, campaign.failed) == (2, 1)

    # The bounced member is not mailed again.
    again = _campaign(account, live_personas.alice, [{"list": main}])
    campaign_start(campaign=again)
    _wait_until_sent(again)
    assert sink.received["cy@example.net"] == 0
    assert not Delivery.objects.filter(campaign=again, email="cy@example.net").exists()


def test_one_click_unsubscribe_from_the_header_stops_further_campaigns(
    audience, live_personas, sink, workers
):
    account, main, _, _ = audience
    campaign = _campaign(account, live_personas.alice, [{"list": main}])
    campaign_start(campaign=campaign)
    _wait_until_sent(campaign)
    message = email.message_from_bytes(sink.last["ann@example.net"], policy=email.policy.default)
    found = re.search(r"<(https?://[^>]+)>", message["List-Unsubscribe"])
    assert found
    url = found.group(1)
    path = url.split("://", 1)[1].split("/", 1)[1]
    # As a mail client does it (RFC 8058): a POST with no cookie and no CSRF token.
    response = Client(enforce_csrf_checks=True).post(
        "/" + path,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Member.objects.get(list=main, email="ann@example.net").status == "unsubscribed"

    again = _campaign(account, live_personas.alice, [{"list": main}])
    campaign_start(campaign=again)
    _wait_until_sent(again)
    assert sink.received["ann@example.net"] == 1
