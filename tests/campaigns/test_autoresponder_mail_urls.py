"""An autoresponder's mail is stored as a Campaign (kind "autoresponder"), but it is not a
campaign to its owner: the campaign pages lead to its autoresponder and do nothing to it,
and the campaign list leaves it out."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign, CampaignStatus
from campaigns.models_autoresponders import Autoresponder, AutoresponderStep
from tests.campaigns.test_autoresponders_support import club, make_autoresponder
from tests.conftest import Personas

__all__ = ["club"]  # a fixture

PAGES = ("detail", "send", "status")
ACTIONS = (
    "send",
    "pause",
    "resume",
    "cancel",
    "unschedule",
    "resend",
    "duplicate",
    "delete",
)


@pytest.fixture
def alice(client: Client, personas: Personas) -> Client:
    client.force_login(personas.alice)
    return client


@pytest.fixture
def welcome(club) -> Autoresponder:
    return make_autoresponder(club, delays=(0, 60))


def mail_of(ar: Autoresponder, position: int = 1) -> AutoresponderStep:
    return ar.steps.select_related("campaign").get(position=position)


def test_the_report_url_of_an_autoresponders_mail_leads_to_its_autoresponder(
    alice: Client, welcome: Autoresponder
):
    step = mail_of(welcome, 2)

    page = alice.get(reverse("campaigns:detail", args=[step.campaign_id]))

    assert page.status_code == 302
    assert page["Location"] == reverse("campaigns:autoresponder_detail", args=[welcome.pk])
    overview = alice.get(page["Location"])
    assert overview.status_code == 200
    assert welcome.name in overview.text


def test_the_campaign_editor_url_leads_to_the_mails_own_editor(
    alice: Client, welcome: Autoresponder
):
    step = mail_of(welcome)

    page = alice.get(reverse("campaigns:edit", args=[step.campaign_id]))

    assert page["Location"] == reverse(
        "campaigns:autoresponder_step_edit", args=[welcome.pk, step.pk]
    )
    assert alice.get(page["Location"]).status_code == 200


def test_every_campaign_page_and_action_leaves_the_mail_alone(
    alice: Client, welcome: Autoresponder
):
    step = mail_of(welcome)
    before = Campaign.objects.filter(pk=step.campaign_id).values().get()
    campaigns = Campaign.objects.count()
    overview = reverse("campaigns:autoresponder_detail", args=[welcome.pk])

    for name in PAGES:
        answer = alice.get(reverse(f"campaigns:{name}", args=[step.campaign_id]))
        assert (name, answer.status_code, answer["Location"]) == (name, 302, overview)
    for name in ACTIONS:
        answer = alice.post(reverse(f"campaigns:{name}", args=[step.campaign_id]))
        assert (name, answer.status_code, answer["Location"]) == (name, 302, overview)
    test_send = alice.post(
        reverse("campaigns:test", args=[step.campaign_id]), {"emails": "alice@a.test"}
    )
    assert test_send["Location"] == reverse(
        "campaigns:autoresponder_step_edit", args=[welcome.pk, step.pk]
    )

    assert Campaign.objects.filter(pk=step.campaign_id).values().get() == before
    assert Campaign.objects.count() == campaigns  # no copy, no resend, nothing deleted
    assert before["status"] == CampaignStatus.SENDING  # on, and it stays on


def test_the_campaign_list_leaves_autoresponder_mails_out(alice: Client, welcome: Autoresponder):
    step = mail_of(welcome)

    page = alice.get(reverse("campaigns:list"))

    assert page.status_code == 200
    assert reverse("campaigns:detail", args=[step.campaign_id]) not in page.text
    assert reverse("campaigns:edit", args=[step.campaign_id]) not in page.text


def test_the_mail_editor_still_previews_through_the_campaign_preview(
    alice: Client, welcome: Autoresponder
):
    step = mail_of(welcome)

    answer = alice.post(
        reverse("campaigns:preview"),
        {
            "campaign_id": step.campaign_id,
            "list_ids": welcome.list_id,
            "subject": "Hej {{ firstname | default: 'ven' }}",
            "html": "<p>Hej</p>",
        },
    )

    assert answer.status_code == 200
    assert answer.json()["subject"] == "Hej ven"


def test_another_accounts_mail_is_still_a_404(
    client: Client, personas: Personas, welcome: Autoresponder
):
    client.force_login(personas.carol)
    step = mail_of(welcome)

    assert client.get(reverse("campaigns:detail", args=[step.campaign_id])).status_code == 404
    assert client.post(reverse("campaigns:delete", args=[step.campaign_id])).status_code == 404
