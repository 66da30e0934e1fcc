"""The autoresponder services: what they refuse, what switching on and off does to the
steps' campaigns, and that another account's objects are a 404."""

from __future__ import annotations

import pytest
from django.http import Http404
from django.utils import translation

from campaigns.autoresponders import (
    autoresponder_activate,
    autoresponder_create,
    autoresponder_deactivate,
    autoresponder_problems,
    autoresponder_step_add,
    autoresponder_step_update,
    autoresponder_update,
)
from campaigns.errors import CampaignError
from campaigns.models import Campaign, Delivery, Link
from campaigns.services import campaign_create
from members import services as member_services
from tests.campaigns.test_autoresponders_support import (
    HTML,
    SENDER,
    club,
    make_autoresponder,
)

__all__ = ["club"]  # a fixture


@pytest.fixture(autouse=True)
def english():
    """The messages are asserted in English, whatever a page test before left active."""
    with translation.override("en"):
        yield


def test_a_new_autoresponder_is_off_and_names_what_it_lacks(club):
    ar = autoresponder_create(
        account=club.account, member_list=club, name="  Birthday  ", trigger="date"
    )
    assert (ar.name, ar.active, ar.trigger) == ("Birthday", False, "date")
    assert autoresponder_problems(autoresponder=ar) == {
        "field_name": "Choose a date field of the list.",
        "steps": "Add at least one mail.",
    }
    with pytest.raises(CampaignError) as refused:
        autoresponder_activate(autoresponder=ar)
    assert "steps" in refused.value.errors
    ar.refresh_from_db()
    assert not ar.active


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"trigger": "whenever"}, "trigger"),
        ({"window_start_hour": 24}, "window_start_hour"),
        ({"window_end_hour": 0}, "window_end_hour"),
        ({"days": -1}, "days"),
        ({"block_days": "soon"}, "block_days"),
        ({"threshold": "a lot"}, "threshold"),
        ({"threshold": "NaN"}, "threshold"),
        ({"date_direction": "sideways"}, "date_direction"),
    ],
)
def test_malformed_settings_are_refused_by_field(club, changes, field):
    ar = make_autoresponder(club, trigger="subscribed", activate=False)
    with pytest.raises(CampaignError) as refused:
        autoresponder_update(autoresponder=ar, **changes)
    assert list(refused.value.errors) == [field]


def test_another_accounts_list_or_campaign_is_a_404(club, personas):
    carols_list = member_services.list_create(account=personas.account_b, name="Carol's")
    with pytest.raises(Http404):
        autoresponder_create(account=club.account, member_list=carols_list, name="X")
    carols = campaign_create(account=personas.account_b, name="Carol's campaign")
    ar = make_autoresponder(club, trigger="opened", activate=False)
    with pytest.raises(Http404):
        autoresponder_update(autoresponder=ar, trigger_campaign_id=carols.pk)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"trigger": "date", "field_name": "level"}, "field_name"),
        ({"trigger": "field_changed", "field_name": "email"}, "field_name"),
        ({"trigger": "field_changed", "field_name": "password"}, "field_name"),
        ({"trigger": "field_changed", "field_name": "level"}, "field_value"),
        ({"trigger": "field_changed", "field_name": "vip", "field_value": "maybe"}, "field_value"),
        ({"trigger": "field_changed", "field_name": "points", "change": "above"}, "threshold"),
        (
            {"trigger": "field_changed", "field_name": "level", "change": "above", "threshold": 1},
            "field_name",
        ),
        ({"trigger": "opened"}, "trigger_campaign_id"),
        ({"trigger": "not_opened", "days": 0}, "trigger_campaign_id"),
        ({"window_start_hour": 9}, "window_end_hour"),
        ({"window_start_hour": 0, "window_end_hour": 24}, "window_end_hour"),
    ],
)
def test_incomplete_triggers_keep_it_off(club, changes, problem):
    ar = make_autoresponder(club, activate=False, **changes)
    assert problem in autoresponder_problems(autoresponder=ar)


def test_switching_on_and_off_moves_the_steps_campaigns(club):
    ar = make_autoresponder(club, trigger="subscribed", delays=(0, 10), activate=False)
    campaigns = Campaign.objects.filter(autoresponder_step__autoresponder=ar)
    assert set(campaigns.values_list("kind", "status")) == {("autoresponder", "draft")}
    autoresponder_activate(autoresponder=ar)
    assert set(campaigns.values_list("status", flat=True)) == {"sending"}
    assert all(c.prepared_at is not None for c in campaigns)
    # The tracked link is stored, so clicks of the mails sent can be followed.
    assert list(Link.objects.filter(campaign__in=campaigns).values_list("url", flat=True)) == [
        "https://bakery.example/cake",
        "https://bakery.example/cake",
    ]
    autoresponder_activate(autoresponder=ar)  # again: nothing changes
    autoresponder_deactivate(autoresponder=ar)
    assert set(campaigns.values_list("status", flat=True)) == {"paused"}
    ar.refresh_from_db()
    assert not ar.active


def test_a_step_added_to_an_active_autoresponder_must_be_complete_and_sends(club):
    ar = make_autoresponder(club, trigger="subscribed")
    with pytest.raises(CampaignError):
        autoresponder_step_add(autoresponder=ar, subject="", from_email=SENDER, html=HTML)
    assert ar.steps.count() == 1  # the transaction took the half-made step back
    step = autoresponder_step_add(
        autoresponder=ar, subject="Two", from_email=SENDER, html=HTML, delay_minutes=5
    )
    step.campaign.refresh_from_db()
    assert (step.position, step.campaign.status) == (2, "sending")


def test_a_step_cannot_be_emptied_while_on_and_its_sent_links_stay(club):
    ar = make_autoresponder(club, trigger="subscribed")
    step = ar.steps.select_related("campaign").get()
    with pytest.raises(CampaignError):
        autoresponder_step_update(step=step, from_email="")
    Delivery.objects.create(campaign=step.campaign, email="a@example.net", occurrence="1")
    with pytest.raises(CampaignError) as refused:
        autoresponder_step_update(step=step, html="<a href='https://else.example/'>x</a>")
    assert list(refused.value.errors) == ["html"]
    autoresponder_step_update(step=step, subject="Better words")
    step.campaign.refresh_from_db()
    assert step.campaign.subject == "Better words"


def test_a_member_with_no_email_is_never_a_recipient(club, time_machine):
    from campaigns.autoresponder_triggers import autoresponders_evaluate
    from tests.campaigns.test_autoresponders_support import cph, rows

    time_machine.move_to(cph(2026, 3, 1, 10, 0), tick=False)
    ar = make_autoresponder(club, trigger="subscribed")
    time_machine.move_to(cph(2026, 3, 1, 10, 0, 30), tick=False)
    member_services.member_create(member_list=club, values={"mobile": "+4512345678"})
    autoresponders_evaluate()
    assert rows(ar) == []
