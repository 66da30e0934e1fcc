"""The open pixel and the click redirect through Django's test client and the real Redis,
then the flusher: what is counted, unique and in total, people's and machines' apart;
where a click may lead; bad tokens. The other tracking tests import the fixtures here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from campaigns import tracking
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Link
from campaigns.models_tracking import (
    CampaignHourly,
    CampaignStats,
    DeliveryActivity,
    LinkStats,
    MemberActivity,
    TrackingEvent,
)
from campaigns.tokens import click_token, open_token, sign
from campaigns.tracking_writer import FlushResult, tracking_flush
from members.models import Member
from tests.campaigns.conftest import Audience

START = datetime.fromisoformat("2026-03-02T09:00:00+00:00")
BREAD, CAKE = "https://bakery.example/bread", "https://bakery.example/cake?size=big&x=1"
# A person reading mail in Safari on a Mac, from an ordinary address.
PERSON: dict[str, Any] = {
    "HTTP_USER_AGENT": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "REMOTE_ADDR": "203.0.113.9",
}
# Apple Mail Privacy Protection fetching the images on arrival.
APPLE_PROXY: dict[str, Any] = {"HTTP_USER_AGENT": "Mozilla/5.0", "REMOTE_ADDR": "17.58.101.12"}


@pytest.fixture(autouse=True)
def tracking_buffer(settings) -> Iterator[str]:
    """A buffer of this test's own (test runs share the machine's Redis), emptied after;
    the process caches and the "Redis is down" pause start empty."""
    key = f"test:tracking:{uuid.uuid4().hex[:12]}"
    settings.TRACKING_BUFFER_KEY = key
    tracking.deliveries.clear()
    tracking.links.clear()
    tracking._down_until.clear()
    redis = tracking.buffer_client()  # tests may point REDIS_URL elsewhere meanwhile
    yield key
    redis.delete(key, f"{key}:processing")
    tracking._down_until.clear()


@dataclass
class Sent:
    campaign: Campaign
    ann: Delivery
    bo: Delivery
    cy: Delivery


def make_sent(campaign: Campaign, audience: Audience, *, sent_at: datetime) -> Sent:
    """``campaign`` as the pipeline leaves it after the send: three recipients who got
    it at ``sent_at`` and two tracked links (bread, cake)."""
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENT,
        started_at=sent_at - timedelta(minutes=1),
        prepared_at=sent_at - timedelta(minutes=1),
        finished_at=sent_at,
        recipients=3,
        sent=3,
    )
    campaign.refresh_from_db()
    Link.objects.bulk_create(
        [
            Link(campaign=campaign, position=0, url=BREAD),
            Link(campaign=campaign, position=1, url=CAKE),
        ]
    )

    def delivery(member: Member) -> Delivery:
        return Delivery.objects.create(
            campaign=campaign,
            member=member,
            email=member.email,
            status=DeliveryStatus.SENT,
            attempts=1,
            sent_at=sent_at,
        )

    return Sent(campaign, delivery(audience.ann), delivery(audience.bo), delivery(audience.cy))


@pytest.fixture
def sent(draft: Campaign, audience: Audience, time_machine) -> Sent:
    """Alice's campaign, sent an hour before START; the clock stands at START."""
    time_machine.move_to(START, tick=False)
    return make_sent(draft, audience, sent_at=START - timedelta(hours=1))


def pixel(delivery: Delivery) -> str:
    return f"/o/{open_token(delivery.pk)}.gif"


def link(delivery: Delivery, position: int) -> str:
    return f"/c/{click_token(delivery.pk, position)}"


def flush() -> FlushResult:
    result = tracking_flush()
    assert result.ran
    return result


def stats_of(campaign: Campaign) -> dict[str, int]:
    row = dict(CampaignStats.objects.filter(campaign=campaign).values().first() or {})
    return {k: v for k, v in row.items() if isinstance(v, int) and k != "campaign_id"}


# -- the pixel ---------------------------------------------------------------------------


def test_an_open_answers_a_transparent_gif_that_nobody_caches(client: Client, sent: Sent):
    response = client.get(pixel(sent.ann), **PERSON)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == tracking.GIF and len(response.content) == 43
    assert "no-store" in response["Cache-Control"] and "no-cache" in response["Cache-Control"]
    assert response["Expires"] == "0"
    assert "Set-Cookie" not in response


def test_an_open_is_buffered_then_written_by_the_flusher(client: Client, sent: Sent):
    client.get(pixel(sent.ann), **PERSON)

    assert tracking.buffer_length() == 1
    assert not TrackingEvent.objects.exists()  # no database write per hit
    assert flush().inserted == 1
    assert tracking.buffer_length() == 0
    event = TrackingEvent.objects.get()
    assert (event.kind, event.delivery_id, event.campaign_id) == (
        "open",
        sent.ann.pk,
        sent.campaign.pk,
    )
    assert (event.member_id, event.machine, event.position) == (sent.ann.member_id, False, None)
    assert event.ip == "203.0.113.0"  # truncated to its /24
    assert event.user_agent.startswith("Mozilla/5.0 (Macintosh")
    assert event.created_at == START


def test_opens_count_once_per_recipient_and_every_time_in_all(client: Client, sent: Sent):
    for delivery in (sent.ann, sent.ann, sent.ann, sent.bo):
        client.get(pixel(delivery), **PERSON)
    flush()

    stats = stats_of(sent.campaign)
    assert (stats["unique_opens"], stats["opens"]) == (2, 4)
    assert (stats["unique_machine_opens"], stats["machine_opens"]) == (0, 0)
    assert CampaignHourly.objects.get(campaign=sent.campaign).opens == 4
    assert DeliveryActivity.objects.get(delivery_id=sent.ann.pk).opened_at == START


def test_opens_flushed_in_several_batches_still_count_once(client: Client, sent: Sent):
    client.get(pixel(sent.ann), **PERSON)
    flush()
    client.get(pixel(sent.ann), **PERSON)
    client.get(pixel(sent.bo), **PERSON)
    flush()

    stats = stats_of(sent.campaign)
    assert (stats["unique_opens"], stats["opens"]) == (2, 3)


def test_an_open_updates_the_members_open_rate_and_activity(
    client: Client, sent: Sent, audience: Audience
):
    Member.objects.filter(pk=audience.ann.pk).update(sent_mail=4)
    client.get(pixel(sent.ann), **PERSON)
    client.get(pixel(sent.ann), **PERSON)
    flush()

    audience.ann.refresh_from_db()
    assert audience.ann.open_rate == 25  # one of her four mails opened
    assert MemberActivity.objects.get(member_id=audience.ann.pk).opened == 1
    audience.bo.refresh_from_db()
    assert audience.bo.open_rate == 0


# -- the click ---------------------------------------------------------------------------


def test_a_click_redirects_to_the_campaigns_own_url(client: Client, sent: Sent):
    response = client.get(link(sent.ann, 1), **PERSON)

    assert response.status_code == 302
    assert response["Location"] == CAKE
    assert "no-store" in response["Cache-Control"]


def test_a_click_counts_as_an_open_when_the_images_were_off(client: Client, sent: Sent):
    client.get(link(sent.ann, 0), **PERSON)
    flush()

    stats = stats_of(sent.campaign)
    assert (stats["unique_clicks"], stats["clicks"]) == (1, 1)
    assert (stats["unique_opens"], stats["opens"]) == (1, 1)
    assert TrackingEvent.objects.filter(kind="open").count() == 0  # counted, not invented


def test_a_click_after_an_open_adds_no_open(client: Client, sent: Sent):
    client.get(pixel(sent.ann), **PERSON)
    client.get(link(sent.ann, 0), **PERSON)
    flush()

    stats = stats_of(sent.campaign)
    assert (stats["unique_opens"], stats["opens"], stats["clicks"]) == (1, 1, 1)


def test_clicks_per_link_unique_and_in_all(client: Client, sent: Sent, time_machine):
    for delivery, position in [(sent.ann, 0), (sent.ann, 0), (sent.bo, 0), (sent.ann, 1)]:
        client.get(link(delivery, position), **PERSON)
        time_machine.shift(5)  # a person does not click two links in one second
    flush()

    per_link = {s.position: (s.unique_clicks, s.clicks) for s in LinkStats.objects.all()}
    assert per_link == {0: (2, 3), 1: (1, 1)}
    stats = stats_of(sent.campaign)
    assert (stats["unique_clicks"], stats["clicks"], stats["machine_clicks"]) == (2, 4, 0)
    assert MemberActivity.objects.get(member_id=str(sent.ann.member_id)).clicked == 1


def test_the_url_comes_from_memory_after_the_first_click(
    client: Client, sent: Sent, django_assert_num_queries
):
    client.get(link(sent.ann, 0), **PERSON)
    with django_assert_num_queries(0):
        assert client.get(link(sent.bo, 1), **PERSON)["Location"] == CAKE


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[:10],
        lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"),  # one letter changed
        lambda t: t.upper()[:-2] + "==",  # not base32 any more
        lambda t: "",
        lambda t: "x" * 400,
    ],
)
def test_a_tampered_click_token_is_a_plain_404_never_a_redirect(client: Client, sent: Sent, mangle):
    token = click_token(sent.ann.pk, 0)
    response = client.get(f"/c/{mangle(token)}", **PERSON)

    assert response.status_code == 404
    assert "Location" not in response
    assert tracking.buffer_length() == 0


def test_a_forged_click_token_for_another_url_is_a_404(client: Client, sent: Sent, settings):
    # Signed by another installation (another key), or an open token used as a click.
    settings.SECRET_KEY = "another-installation-" + "y" * 50
    foreign = click_token(sent.ann.pk, 0)
    settings.SECRET_KEY = "my-installation-" + "z" * 50
    open_as_click = open_token(sent.ann.pk)
    other_kind = sign(b"u", open_token(sent.ann.pk).encode()[:10])

    for token in (foreign, open_as_click, other_kind):
        response = client.get(f"/c/{token}", **PERSON)
        assert response.status_code == 404
        assert "Location" not in response
    assert tracking.buffer_length() == 0


def test_a_position_the_campaign_does_not_have_is_a_404(client: Client, sent: Sent):
    response = client.get(link(sent.ann, 7), **PERSON)  # a valid token, no such link

    assert response.status_code == 404 and "Location" not in response
    assert tracking.buffer_length() == 0


def test_a_click_on_a_delivery_that_does_not_exist_is_a_404(client: Client, sent: Sent):
    response = client.get(f"/c/{click_token(sent.cy.pk + 10_000, 0)}", **PERSON)

    assert response.status_code == 404 and "Location" not in response


def test_a_bad_pixel_token_is_a_404_and_records_nothing(client: Client, sent: Sent):
    for path in (
        f"/o/{open_token(sent.ann.pk)[:-3]}.gif",
        f"/o/{click_token(sent.ann.pk, 0)}.gif",  # a click token is not an open token
        "/o/nonsense.gif",
    ):
        assert client.get(path, **PERSON).status_code == 404
    assert tracking.buffer_length() == 0


def test_tokens_signed_with_the_old_secret_key_keep_working(client: Client, sent: Sent, settings):
    old_click, old_open = click_token(sent.ann.pk, 1), open_token(sent.bo.pk)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-rotated-secret-key-" + "k" * 50

    assert client.get(f"/c/{old_click}", **PERSON)["Location"] == CAKE
    assert client.get(f"/o/{old_open}.gif", **PERSON).status_code == 200
    assert flush().inserted == 2


def test_head_answers_without_counting_and_post_is_refused(client: Client, sent: Sent):
    assert client.head(pixel(sent.ann), **PERSON).status_code == 200
    assert client.head(link(sent.ann, 0), **PERSON).status_code == 302
    assert client.post(pixel(sent.ann), **PERSON).status_code == 405
    assert client.post(link(sent.ann, 0), **PERSON).status_code == 405
    assert tracking.buffer_length() == 0


def test_a_hit_of_a_deleted_delivery_is_dropped_by_the_flusher(client: Client, sent: Sent):
    client.get(pixel(sent.cy), **PERSON)
    Delivery.objects.filter(pk=sent.cy.pk).delete()

    result = flush()
    assert (result.read, result.inserted) == (1, 0)
    assert not CampaignStats.objects.exists()


# -- machines ----------------------------------------------------------------------------


def test_apple_privacy_proxy_opens_are_counted_as_machines(client: Client, sent: Sent):
    client.get(pixel(sent.ann), **APPLE_PROXY)
    client.get(pixel(sent.bo), HTTP_USER_AGENT=PERSON["HTTP_USER_AGENT"], REMOTE_ADDR="17.1.2.3")
    client.get(pixel(sent.cy), HTTP_USER_AGENT="Mozilla/5.0", REMOTE_ADDR="198.51.100.4")
    client.get(pixel(sent.ann), **PERSON)  # and later Ann reads it herself
    flush()

    stats = stats_of(sent.campaign)
    assert (stats["unique_machine_opens"], stats["machine_opens"]) == (3, 3)
    assert (stats["unique_opens"], stats["opens"]) == (1, 1)
    assert TrackingEvent.objects.filter(machine=True).count() == 3


def test_an_open_within_seconds_of_delivery_is_a_machine_prefetching(
    client: Client, draft: Campaign, audience: Audience, time_machine
):
    time_machine.move_to(START, tick=False)
    sent = make_sent(draft, audience, sent_at=START - timedelta(seconds=2))
    client.get(pixel(sent.ann), **PERSON)
    time_machine.shift(3600)
    client.get(pixel(sent.ann), **PERSON)  # the person, an hour later
    flush()

    stats = stats_of(sent.campaign)
    assert (stats["machine_opens"], stats["unique_machine_opens"]) == (1, 1)
    assert (stats["opens"], stats["unique_opens"]) == (1, 1)


def test_a_click_within_seconds_of_delivery_is_a_link_scanner(
    client: Client, draft: Campaign, audience: Audience, time_machine
):
    time_machine.move_to(START, tick=False)
    sent = make_sent(draft, audience, sent_at=START - timedelta(seconds=3))
    client.get(link(sent.ann, 0), **PERSON)
    flush()

    stats = stats_of(sent.campaign)
    assert (stats["machine_clicks"], stats["unique_machine_clicks"], stats["clicks"]) == (1, 1, 0)
    assert (stats["unique_machine_opens"], stats["unique_opens"]) == (1, 0)
    assert LinkStats.objects.get(position=0).machine_clicks == 1


def test_every_link_clicked_in_the_same_second_is_a_scanners(client: Client, sent: Sent):
    client.get(link(sent.ann, 0), **PERSON)
    client.get(link(sent.ann, 1), **PERSON)  # the same second: no person is that quick
    client.get(link(sent.bo, 1), **PERSON)  # someone else: a person
    flush()

    assert set(
        TrackingEvent.objects.filter(machine=True).values_list("delivery_id", flat=True)
    ) == {sent.ann.pk}
    stats = stats_of(sent.campaign)
    assert (stats["machine_clicks"], stats["clicks"], stats["unique_clicks"]) == (2, 1, 1)


@pytest.mark.parametrize(
    "agent",
    ["", "python-requests/2.31", "Mozilla/5.0 (compatible; Barracuda Sentinel)", "curl/8.4.0"],
)
def test_known_robots_click_as_machines(client: Client, sent: Sent, agent: str):
    client.get(link(sent.ann, 0), HTTP_USER_AGENT=agent, REMOTE_ADDR="198.51.100.7")
    flush()

    assert TrackingEvent.objects.get().machine is True


def test_gmails_image_proxy_is_a_person_opening_the_mail(client: Client, sent: Sent):
    gmail = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    client.get(pixel(sent.ann), HTTP_USER_AGENT=gmail, REMOTE_ADDR="66.249.84.1")
    flush()

    assert stats_of(sent.campaign)["unique_opens"] == 1


# -- another campaign's ------------------------------------------------------------------


def test_a_click_leads_to_the_url_of_that_deliverys_campaign_only(
    client: Client, sent: Sent, audience: Audience, personas
):
    other = Campaign.objects.create(account=personas.account_b, name="Carol's", status="sent")
    Link.objects.create(campaign=other, position=0, url="https://carol.example/evil")
    Link.objects.create(campaign=other, position=5, url="https://carol.example/five")
    carols = Delivery.objects.create(campaign=other, email="z@example.net", status="sent")

    assert client.get(link(sent.ann, 0), **PERSON)["Location"] == BREAD
    assert client.get(link(carols, 0), **PERSON)["Location"] == "https://carol.example/evil"
    assert client.get(link(sent.ann, 5), **PERSON).status_code == 404


# -- webhooks ----------------------------------------------------------------------------


def test_people_opening_and_clicking_reach_the_lists_webhooks(
    client: Client, sent: Sent, audience: Audience
):
    from members.models import WebhookDelivery
    from members.webhooks import webhook_create

    webhook_create(
        member_list=audience.list, url="https://hooks.example/heyloyalty", events=["open", "click"]
    )
    client.get(pixel(sent.ann), **PERSON)
    client.get(link(sent.bo, 1), **PERSON)
    client.get(pixel(sent.cy), **APPLE_PROXY)  # a machine: no webhook
    flush()

    sent_out = {(d.event, str(d.member_id)) for d in WebhookDelivery.objects.all()}
    assert sent_out == {("open", str(sent.ann.member_id)), ("click", str(sent.bo.member_id))}
    click = WebhookDelivery.objects.get(event="click")
    assert (click.payload["url"], click.payload["campaign_id"]) == (CAKE, sent.campaign.pk)


def test_readers_can_follow_the_events_in_the_order_they_were_written(client: Client, sent: Sent):
    from campaigns.stats import tracking_events_recent

    client.get(pixel(sent.ann), **PERSON)
    client.get(link(sent.bo, 0), **PERSON)
    flush()

    found = tracking_events_recent(campaign_id=sent.campaign.pk)
    assert [(e.kind, e.delivery_id, e.url) for _, e in found] == [
        ("open", sent.ann.pk, None),
        ("click", sent.bo.pk, BREAD),
    ]
    assert found[1][1].member_id == str(sent.bo.member_id)
    assert tracking_events_recent(after_id=found[-1][0]) == []
