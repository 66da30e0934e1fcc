"""A list's growth in a real Chromium: from the list page to its Growth tab by keyboard,
the charts, the numbers behind them, and another period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.unsubscribe import member_unsubscribe
from members import services
from members.models import Member
from tests.browser.test_dashboard_browser import sign_in
from tests.conftest import Personas

pytestmark = pytest.mark.browser


def test_alice_reads_how_her_list_grew(page, live_server, live_personas: Personas):
    news = services.list_create(account=live_personas.account_a, name="Nyheder")
    members = [
        services.member_create(member_list=news, values={"email": f"{name}@example.dk"})
        for name in ("ann", "bo", "cy")
    ]
    # Ann and Bo joined ten days ago, with the list; Cy today, and Bo left.
    ten_days_ago = timezone.now() - timedelta(days=10)
    Member.objects.filter(pk__in=[members[0].pk, members[1].pk]).update(created_at=ten_days_ago)
    news.created_at = ten_days_ago
    news.save(update_fields=["created_at"])
    assert member_unsubscribe(member=members[1], campaign_id=None, source="page")

    sign_in(page, live_server, live_personas)
    page.goto(f"{live_server.url}/lists/{news.pk}/")
    growth_tab = page.get_by_role("link", name="Growth", exact=True)
    growth_tab.focus()
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Growth", exact=True)).to_be_visible()
    expect(growth_tab).to_have_attribute("aria-current", "page")
    expect(page.locator('[data-stat="size"]')).to_have_text("2")
    expect(page.locator('[data-stat="subscribed"]')).to_have_text("3")
    expect(page.locator('[data-stat="unsubscribed"]')).to_have_text("1")
    size = page.get_by_role("img", name="Members on the list, at the end of each day")
    expect(size).to_be_visible()
    expect(size.locator("polyline.series-size")).to_have_count(1)
    daily = page.get_by_role("img", name="Subscribed and unsubscribed, by the day")
    expect(daily.locator("polyline")).to_have_count(2)
    page.get_by_text("Show the numbers").first.click()
    rows = page.locator("#chart-size tbody tr")
    expect(rows).to_have_count(11)  # ten days ago to today
    expect(rows.last.locator("td")).to_have_text("2")

    page.get_by_label("Period").select_option(label="Last 30 days")
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/lists/{news.pk}/growth/?days=30")
    expect(page.locator('[data-stat="subscribed"]')).to_have_text("3")
