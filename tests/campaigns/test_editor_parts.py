"""The campaign editor and the editor of an autoresponder's mail are one editor: the
sender, the message, the live preview and the test send are the same templates."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.services import campaign_create
from tests.campaigns.test_autoresponders_support import club, make_autoresponder
from tests.conftest import Personas

__all__ = ["club"]  # a fixture

SHARED = {
    "campaigns/_editor_content.html",
    "campaigns/_editor_preview.html",
    "campaigns/_test_send.html",
}


@pytest.fixture
def alice(client: Client, personas: Personas) -> Client:
    client.force_login(personas.alice)
    return client


def templates_of(page) -> set[str]:
    return {template.name for template in page.templates}


def test_both_editors_are_made_of_the_same_parts(alice: Client, personas: Personas, club):
    ar = make_autoresponder(club, delays=(0,), activate=False)
    step = ar.steps.get()
    draft = campaign_create(account=personas.account_a, name="Maj", list_ids=[club.pk])

    campaign_page = alice.get(reverse("campaigns:edit", args=[draft.pk]))
    mail_page = alice.get(reverse("campaigns:autoresponder_step_edit", args=[ar.pk, step.pk]))

    assert templates_of(campaign_page) >= SHARED
    assert templates_of(mail_page) >= SHARED
    # Each fills the parts with its own words and addresses.
    assert "Save the draft to update the preview." in campaign_page.text
    assert "Save the mail to update the preview." in mail_page.text
    assert f'action="{reverse("campaigns:test", args=[draft.pk])}"' in campaign_page.text
    step_test = reverse("campaigns:autoresponder_step_test", args=[ar.pk, step.pk])
    assert f'action="{step_test}"' in mail_page.text
    assert "Tests show the saved mail" in mail_page.text


def test_new_ones_have_no_test_send_yet(alice: Client, club):
    ar = make_autoresponder(club, delays=(0,), activate=False)

    for page in (
        alice.get(reverse("campaigns:create")),
        alice.get(reverse("campaigns:autoresponder_step_create", args=[ar.pk])),
    ):
        assert page.status_code == 200
        assert "campaigns/_test_send.html" not in templates_of(page)
        assert "The preview follows as you type." in page.text
