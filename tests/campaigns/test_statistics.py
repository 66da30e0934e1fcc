"""Statistics as Alice reads them: the campaign report page, the API, a list's growth
and a member's timeline; all from counters, so a page costs the same with more events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from campaigns.models import Bounce, BounceKind, Campaign, CampaignStatus, Delivery, Unsubscribe
from campaigns.stats import campaign_activity, list_growth, with_rates
from campaigns.tracking_writer import member_rates_refresh
from members import services as member_services
from members.models import Member
from tests.api.conftest import Api
from tests.campaigns.conftest import Audience
from tests.campaigns.test_tracking import (
    APPLE_PROXY,
    BREAD,
    PERSON,
    START,
    Sent,
    flush,
    link,
    pixel,
    sent,
    tracking_buffer,
)
from tests.conftest import Personas

__all__ = ["sent", "tracking_buffer"]  # fixtures


@pytest.fixture
def alice(client: Client, personas: Personas) -> Client:
    client.force_login(personas.alice)
    return client


def some_activity(sent: Sent, time_machine) -> None:
    """Ann opens twice and clicks bread, Bo opens, Apple's proxy opens Cy's: flushed."""
    hits = Client()
    hits.get(pixel(sent.ann), **PERSON)
    hits.get(pixel(sent.ann), **PERSON)
    hits.get(link(sent.ann, 0), **PERSON)
    time_machine.shift(120)
    hits.get(pixel(sent.bo), **PERSON)
    hits.get(pixel(sent.cy), **APPLE_PROXY)
    flush()


def report(client: Client, campaign: Campaign) -> str:
    page = client.get(reverse("campaigns:detail", args=[campaign.pk]))
    assert page.status_code == 200
    return page.text


# -- the numbers -------------------------------------------------------------------------


def test_rates_are_of_the_messages_delivered():
    found = with_rates(
        {"sent": 200, "hard_bounces": 6, "soft_bounces": 4, "unique_opens": 95, "unique_clicks": 19}
    )
    assert found["delivered"] == 190
    assert (found["open_rate"], found["click_rate"], found["click_to_open_rate"]) == (
        50.0,
        10.0,
        20.0,
    )
    assert found["bounce_rate"] == 5.0
    assert with_rates({"sent": 0})["open_rate"] == 0.0  # nothing sent: no division by zero


def test_the_api_read_of_a_campaign_has_its_statistics(alice_api: Api, sent: Sent, time_machine):
    some_activity(sent, time_machine)
    Bounce.objects.create(
        account=sent.campaign.account,
        campaign=sent.campaign,
        email="x@example.net",
        kind=BounceKind.HARD,
        source="smtp",
    )

    statistics = alice_api.get(f"campaigns/{sent.campaign.pk}").json()["statistics"]

    assert statistics["sent"] == 3 and statistics["delivered"] == 2
    assert (statistics["unique_opens"], statistics["opens"]) == (2, 3)
    assert (statistics["unique_clicks"], statistics["clicks"]) == (1, 1)
    assert (statistics["unique_machine_opens"], statistics["machine_opens"]) == (1, 1)
    assert statistics["open_rate"] == 100.0 and statistics["click_to_open_rate"] == 50.0
    assert statistics["hard_bounces"] == 1


def test_the_statistics_route_has_links_and_activity_by_the_hour_then_by_the_day(
    alice_api: Api, sent: Sent, time_machine
):
    some_activity(sent, time_machine)
    time_machine.move_to(START + timedelta(days=3), tick=False)
    Client().get(link(sent.bo, 1), **PERSON)
    flush()

    answer = alice_api.get(f"campaigns/{sent.campaign.pk}/statistics").json()

    assert answer["campaign_id"] == sent.campaign.pk
    assert answer["statistics"]["clicks"] == 2
    assert [(row["position"], row["unique_clicks"]) for row in answer["links"]] == [(0, 1), (1, 1)]
    assert answer["links"][0]["url"] == BREAD
    hourly = answer["hourly"]
    assert len(hourly) == 48  # every hour of the first two, also the quiet ones
    assert hourly[0]["start"] == "2026-03-02T08:00:00+01:00"  # the account's time zone
    assert sum(h["opens"] for h in hourly) == 3 and sum(h["machine_opens"] for h in hourly) == 1
    quiet = {"opens": 0, "clicks": 0, "machine_opens": 0, "machine_clicks": 0}
    assert answer["daily"] == [  # from the end of the first 48 hours to the last activity
        {"start": "2026-03-04", **quiet},
        {"start": "2026-03-05", **quiet, "clicks": 1},
    ]


def test_the_statistics_route_answers_for_a_campaign_nobody_opened(alice_api: Api, draft):
    answer = alice_api.get(f"campaigns/{draft.pk}/statistics").json()

    assert (answer["statistics"]["opens"], answer["hourly"], answer["daily"]) == (0, [], [])


def test_activity_shows_the_hours_so_far_while_the_first_two_days_go_on(sent: Sent, time_machine):
    activity = campaign_activity(campaign=sent.campaign)  # START: two hours after the start

    assert [p.start.isoformat()[11:13] for p in activity.hourly] == ["07", "08", "09"]  # UTC
    assert activity.daily == []


# -- the report page ---------------------------------------------------------------------


def test_the_report_shows_opens_clicks_the_chart_and_the_links(
    alice: Client, sent: Sent, time_machine
):
    some_activity(sent, time_machine)

    page = report(alice, sent.campaign)

    assert '<p class="stat-value" data-stat="unique_opens">2</p>' in page
    assert '<p class="stat-value" data-stat="unique_clicks">1</p>' in page
    assert '<p class="stat-value" data-stat="unique_machine_opens">1</p>' in page
    assert "66.7% · 3 opens in all" in page
    assert '<svg viewBox="0 0 720 240" role="img"' in page
    assert 'aria-labelledby="chart-hourly-title" aria-describedby="chart-hourly-desc"' in page
    assert '<title id="chart-hourly-title">Opens and clicks in the first 48 hours' in page
    assert '<desc id="chart-hourly-desc">3 points' in page
    assert 'class="series series-opens"' in page and 'class="series series-machine_opens"' in page
    assert "<summary>Show the numbers</summary>" in page
    assert f'href="{BREAD}"' in page
    assert '<script src="http' not in page  # nothing from a CDN


def test_the_report_speaks_danish(client: Client, personas: Personas, sent: Sent, time_machine):
    some_activity(sent, time_machine)
    client.force_login(personas.alice)

    with translation.override("en"):  # what the request switches to is not left behind
        page = client.get(
            reverse("campaigns:detail", args=[sent.campaign.pk]), HTTP_ACCEPT_LANGUAGE="da"
        ).text

    assert "Åbninger og klik" in page
    assert "Åbnet af maskiner" in page


def test_the_report_costs_the_same_queries_with_ten_times_the_events(
    alice: Client, sent: Sent, audience: Audience, time_machine
):
    some_activity(sent, time_machine)
    report(alice, sent.campaign)  # warm: the session, the user
    with CaptureQueriesContext(connection) as few:
        report(alice, sent.campaign)

    hits = Client()
    more = [
        Delivery.objects.create(
            campaign=sent.campaign, email=f"more{i}@example.net", status="sent", sent_at=START
        )
        for i in range(10)
    ]
    for hour in range(30):
        time_machine.shift(3600)
        for delivery in more:
            hits.get(pixel(delivery), **PERSON)
            hits.get(link(delivery, hour % 2), **PERSON)
    flush()
    with CaptureQueriesContext(connection) as many:
        page = report(alice, sent.campaign)

    assert 'data-stat="unique_clicks">11</p>' in page
    assert len(many.captured_queries) == len(few.captured_queries)
    assert not any("trackingevent" in q["sql"] for q in many.captured_queries)


def test_the_report_of_an_untracked_campaign_says_so(alice: Client, sent: Sent):
    Campaign.objects.filter(pk=sent.campaign.pk).update(tracking=False)

    assert "Opens and clicks are not tracked for this campaign." in report(alice, sent.campaign)


# -- a list, a member --------------------------------------------------------------------


def test_a_lists_growth_is_members_added_and_unsubscribes_per_day(
    alice_api: Api, audience: Audience, time_machine
):
    time_machine.move_to(START, tick=False)
    joined = member_services.member_create(
        member_list=audience.list, values={"email": "new@example.net"}
    )
    Member.objects.filter(list=audience.list).update(created_at=START - timedelta(hours=1))
    Member.objects.filter(pk=audience.ann.pk).update(created_at=START - timedelta(days=2))
    Member.objects.filter(pk=joined.pk).update(created_at=START - timedelta(days=2, hours=1))
    Unsubscribe.objects.create(
        account=audience.list.account, member=audience.bo, list=audience.list, source="page"
    )

    days = {g.day.isoformat(): g for g in list_growth(member_list=audience.list, days=3)}

    assert list(days) == ["2026-02-28", "2026-03-01", "2026-03-02"]
    assert days["2026-02-28"].subscribed == 2
    assert (days["2026-03-02"].subscribed, days["2026-03-02"].unsubscribed) == (
        3,
        1,
    )  # Bo, Cy, Gone
    answer = alice_api.get(f"lists/{audience.list.pk}/statistics", query={"days": 3}).json()
    assert answer["days"][-1] == {
        "date": "2026-03-02",
        "subscribed": 3,
        "unsubscribed": 1,
        "size": 4,
    }
    assert (
        alice_api.get(f"lists/{audience.list.pk}/statistics", query={"days": 0}).status_code == 400
    )


def test_a_members_page_shows_what_they_received_opened_and_clicked(
    alice: Client, sent: Sent, audience: Audience, time_machine
):
    some_activity(sent, time_machine)
    Member.objects.filter(pk=audience.ann.pk).update(sent_mail=1)

    page = alice.get(
        reverse("members:member_detail", args=[audience.list.pk, audience.ann.pk])
    ).text

    assert "Received “Spring bread”" in page
    assert "Opened “Spring bread”" in page
    assert f"Clicked {BREAD} in “Spring bread”" in page
    assert "opened 100%" in page
    cys = alice.get(reverse("members:member_detail", args=[audience.list.pk, audience.cy.pk])).text
    assert "(by a machine: a privacy proxy or link scanner)" in cys


def test_open_rates_are_recomputed_when_a_send_finishes(
    sent: Sent, audience: Audience, time_machine
):
    Member.objects.filter(pk=audience.ann.pk).update(sent_mail=1)
    Client().get(pixel(sent.ann), **PERSON)
    flush()
    audience.ann.refresh_from_db()
    assert audience.ann.open_rate == 100

    # Another campaign to Ann finishes: her sent_mail grows, her open rate falls.
    later = Campaign.objects.create(
        account=sent.campaign.account,
        name="Later",
        status=CampaignStatus.SENT,
        finished_at=START,
        sent=1,
    )
    Delivery.objects.create(
        campaign=later, member=audience.ann, email="ann@example.net", status="sent"
    )
    Member.objects.filter(pk=audience.ann.pk).update(sent_mail=2)

    assert member_rates_refresh() >= 1
    audience.ann.refresh_from_db()
    assert audience.ann.open_rate == 50
    assert member_rates_refresh() == 0  # done once
