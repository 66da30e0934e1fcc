"""A sent campaign's report in a real Chromium: opens and clicks recorded through the
real endpoints of the live server, written by the flusher, seen as numbers and a chart."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Link
from campaigns.tokens import click_token, open_token
from campaigns.tracking_writer import tracking_flush
from members import services as member_services
from tests.browser.test_dashboard_browser import sign_in
from tests.campaigns.test_tracking import tracking_buffer
from tests.conftest import Personas

__all__ = ["tracking_buffer"]  # a fixture

pytestmark = pytest.mark.browser

PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the click's answer itself, not the shop behind it


def hit(url: str) -> tuple[int, str | None]:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": PERSON})  # noqa: S310 - ours
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, answer.headers.get("Location")
    except urllib.error.HTTPError as error:  # 302 and 404 arrive as errors here
        return error.code, error.headers.get("Location")


def test_a_sent_campaigns_report_shows_the_chart_and_the_numbers(
    page, live_server, live_personas: Personas
):
    account = live_personas.account_a
    member_list = member_services.list_create(account=account, name="Bakery news")
    members = [
        member_services.member_create(member_list=member_list, values={"email": f"{n}@example.net"})
        for n in ("ann", "bo", "cy", "di")
    ]
    sent_at = timezone.now() - timedelta(hours=3)
    campaign = Campaign.objects.create(
        account=account,
        name="Rye is back",
        subject="Rye",
        from_email="news@bakery.example",
        status=CampaignStatus.SENT,
        started_at=sent_at,
        prepared_at=sent_at,
        finished_at=sent_at,
        recipients=4,
        sent=4,
    )
    Link.objects.create(campaign=campaign, position=0, url="https://bakery.example/rye")
    deliveries = [
        Delivery.objects.create(
            campaign=campaign,
            member=m,
            email=m.email,
            status=DeliveryStatus.SENT,
            sent_at=sent_at,
        )
        for m in members
    ]
    for delivery in deliveries[:3]:  # three open it, one of them twice
        assert hit(f"{live_server.url}/o/{open_token(delivery.pk)}.gif") == (200, None)
    hit(f"{live_server.url}/o/{open_token(deliveries[0].pk)}.gif")
    click = f"{live_server.url}/c/{click_token(deliveries[1].pk, 0)}"
    assert hit(click) == (302, "https://bakery.example/rye")
    assert hit(f"{live_server.url}/c/{click_token(deliveries[1].pk, 0)[:-4]}") == (404, None)
    assert tracking_flush().inserted == 5

    sign_in(page, live_server, live_personas)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")

    section = page.get_by_role("region", name="Opens and clicks")
    expect(section).to_be_visible()
    expect(section.locator('[data-stat="unique_opens"]')).to_have_text("3")
    expect(section.locator('[data-stat="unique_clicks"]')).to_have_text("1")
    expect(section.get_by_text("75.0% · 4 opens in all")).to_be_visible()
    chart = page.get_by_role("img", name="Opens and clicks in the first 48 hours, by the hour")
    expect(chart).to_be_visible()
    expect(chart.locator("polyline.series-opens")).to_have_count(1)
    page.get_by_text("Show the numbers").first.click()
    expect(section.get_by_role("table").first).to_be_visible()
    expect(page.locator("#link-clicks")).to_contain_text("https://bakery.example/rye")
