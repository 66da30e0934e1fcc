"""The campaign editor's live preview and the progress of a send, in a real Chromium."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignStatus, SenderDomain
from members import services as member_services
from tests.browser.test_dashboard_browser import sign_in
from tests.campaigns.pipeline_support import CountingSink, Workers, send_queue
from tests.conftest import Personas

__all__ = ["send_queue"]  # a fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def bakery(live_personas: Personas):
    account = live_personas.account_a
    SenderDomain.objects.create(account=account, domain="bakery.example", verified=True)
    member_list = member_services.list_create(account=account, name="Bakery news")
    member_services.member_create(
        member_list=member_list, values={"email": "ann@example.net", "firstname": "Ann"}
    )
    return member_list


def test_the_preview_follows_the_editor_and_shows_template_errors_by_the_field(
    page,
    live_server,
    live_personas: Personas,
    bakery,
):
    sign_in(page, live_server, live_personas)
    page.goto(f"{live_server.url}/campaigns/new/")
    page.get_by_label("Name", exact=True).fill("Spring")
    page.get_by_role("group", name="Lists", exact=True).get_by_label("Bakery news").check()
    page.get_by_label("Subject").fill('Hej {{ firstname | default: "ven" }}')
    page.get_by_label("Message (HTML)").fill("<h1>Fresh bread, {{ firstname }}</h1>")

    expect(page.locator("#preview-subject")).to_have_text("Hej ven")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text("Fresh bread,")

    page.get_by_label("Message (HTML)").fill("<h1>{{ frstname }}</h1>")
    expect(page.locator('[data-error-for="html"]')).to_contain_text("frstname")

    page.get_by_label("Message (HTML)").fill("<h1>Fresh bread, {{ firstname }}</h1>")
    expect(page.locator('[data-error-for="html"]')).to_be_hidden()
    page.get_by_label("Sender address").fill("news@bakery.example")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("The campaign Spring was saved.")).to_be_visible()

    campaign = Campaign.objects.get(name="Spring")
    page.get_by_label("Preview as").select_option(label="ann@example.net")
    expect(frame.locator("h1")).to_have_text("Fresh bread, Ann")
    expect(page.locator("#preview-subject")).to_have_text("Hej Ann")

    page.get_by_role("button", name="Save and send…").click()
    expect(page.get_by_role("heading", name="To 1 recipient")).to_be_visible()
    expect(page.get_by_label("Date and time")).to_be_hidden()
    page.get_by_label("At a later time").check()
    expect(page.get_by_role("button", name="Schedule for 1 recipient")).to_be_visible()
    assert campaign.status == CampaignStatus.DRAFT


def test_the_progress_bar_follows_the_send_and_the_page_ends_as_a_report(
    page,
    live_server,
    live_personas: Personas,
    bakery,
):
    campaign = Campaign.objects.create(
        account=live_personas.account_a,
        name="Going out",
        subject="Hi",
        from_email="news@bakery.example",
        html="<p>Hi</p>",
    )
    campaign.targets.create(list=bakery)
    # No worker here: the test plays the pipeline, moving the counters a send moves.
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENDING,
        started_at=timezone.now(),
        prepared_at=timezone.now(),
        recipients=4,
    )
    sign_in(page, live_server, live_personas)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    bar = page.locator("#campaign-progress")
    expect(bar).to_have_attribute("value", "0")

    Campaign.objects.filter(pk=campaign.pk).update(sent=2)
    expect(bar).to_have_attribute("value", "50")

    Campaign.objects.filter(pk=campaign.pk).update(
        sent=4, status=CampaignStatus.SENT, finished_at=timezone.now()
    )
    expect(page.locator("#campaign-badge")).to_have_text("Sent")  # reloaded when it ended
    expect(bar).to_be_hidden()
    expect(page.get_by_role("heading", name="Recipients")).to_be_visible()


def test_a_campaign_composed_and_sent_in_the_browser_reaches_100_percent(
    page, live_server, live_personas: Personas, bakery, send_queue
):
    """Compose, send, and watch a real worker take the bar to 100%: 300 recipients at a
    rate limit of 100 a second, so the bar has time to move."""
    member_services.members_add(
        member_list=bakery,
        members=(member_services.MemberData(email=f"r{i}@example.net") for i in range(299)),
    )
    sign_in(page, live_server, live_personas)
    page.goto(f"{live_server.url}/campaigns/new/")
    page.get_by_label("Name", exact=True).fill("Weekend bake")
    page.get_by_role("group", name="Lists", exact=True).get_by_label("Bakery news").check()
    page.get_by_label("Subject").fill("Fresh on Saturday")
    page.get_by_label("Message (HTML)").fill("<p>Hi {{ firstname }}, rye is back.</p>")
    page.get_by_label("Sender address").fill("news@bakery.example")
    with CountingSink() as sink:
        workers = Workers(
            queue=send_queue, smtp_port=sink.port, concurrency=1, SEND_RATE_PER_ACCOUNT="100"
        )
        workers.start()
        try:
            page.get_by_role("button", name="Save and send…").click()
            expect(page.get_by_role("heading", name="To 300 recipients")).to_be_visible()
            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_role("button", name="Send now to 300 recipients").click()
            bar = page.locator("#campaign-progress")
            expect(bar).to_be_visible()
            # Part way: the bar moves while the worker sends.
            expect(bar).not_to_have_attribute("value", "0", timeout=20_000)
            expect(bar).to_have_attribute("value", "100", timeout=30_000)
            expect(page.locator("#campaign-badge")).to_have_text("Sent", timeout=10_000)
        finally:
            workers.stop()
        assert sink.total == 300
    campaign = Campaign.objects.get(name="Weekend bake")
    assert (campaign.status, campaign.sent) == (CampaignStatus.SENT, 300)
