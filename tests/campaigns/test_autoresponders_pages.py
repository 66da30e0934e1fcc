"""The autoresponders dashboard as Alice uses it: the list, a new one, its settings, its
mails in the campaign editor with the live preview, switching on and off, statistics."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.models import Delivery
from campaigns.models_autoresponders import Autoresponder
from tests.campaigns.test_autoresponders_support import (
    HTML,
    SENDER,
    club,
    join,
    make_autoresponder,
)
from tests.conftest import Personas

__all__ = ["club"]  # a fixture


@pytest.fixture
def alice(client: Client, personas: Personas) -> Client:
    client.force_login(personas.alice)
    return client


def mail_data(**changes) -> dict:
    return {
        "delay": "2",
        "delay_unit": "days",
        "subject": 'Velkommen {{ firstname | default: "ven" }}',
        "preheader": "",
        "from_name": "Cake club",
        "from_email": SENDER,
        "reply_to": "",
        "html": HTML,
        "text": "",
        "tracking": "on",
        **changes,
    }


def test_no_autoresponders_yet_says_what_they_are_for(alice: Client, club):
    page = alice.get(reverse("campaigns:autoresponders"))
    assert page.status_code == 200
    assert "Make your first autoresponder" in page.text
    assert 'href="/autoresponders/" aria-current="page"' in page.text  # the nav entry


def test_alice_makes_an_autoresponder_from_nothing_to_on(alice: Client, club):
    page = alice.post(
        reverse("campaigns:autoresponder_create"),
        {"name": "Welcome", "list": club.pk, "trigger": "subscribed"},
        follow=True,
    )
    ar = Autoresponder.objects.get(name="Welcome")
    assert (ar.list, ar.active, ar.account) == (club, False, club.account)
    assert "Now set up the trigger and write the first mail." in page.text

    overview = alice.get(reverse("campaigns:autoresponder_detail", args=[ar.pk])).text
    assert "Add at least one mail." in overview
    assert "When a member joins Cake club" in overview

    alice.post(reverse("campaigns:autoresponder_step_create", args=[ar.pk]), mail_data())
    alice.post(
        reverse("campaigns:autoresponder_step_create", args=[ar.pk]),
        mail_data(subject="A week on", delay="7", delay_unit="days"),
    )
    steps = list(ar.steps.select_related("campaign").order_by("position"))
    assert [(s.delay_minutes, s.campaign.subject) for s in steps] == [
        (2 * 24 * 60, 'Velkommen {{ firstname | default: "ven" }}'),
        (7 * 24 * 60, "A week on"),
    ]
    assert all(s.campaign.kind == "autoresponder" for s in steps)

    page = alice.post(reverse("campaigns:autoresponder_activate", args=[ar.pk]), follow=True)
    assert "The autoresponder is on" in page.text
    ar.refresh_from_db()
    assert ar.active
    assert {s.campaign.status for s in ar.steps.select_related("campaign")} == {"sending"}
    assert "2 days after the trigger" in page.text and "7 days after the mail before" in page.text
    # Step campaigns are not campaigns of the campaign list.
    assert "A week on" not in alice.get(reverse("campaigns:list")).text

    alice.post(reverse("campaigns:autoresponder_deactivate", args=[ar.pk]))
    ar.refresh_from_db()
    assert not ar.active
    assert {s.campaign.status for s in ar.steps.select_related("campaign")} == {"paused"}


def test_a_mail_with_problems_keeps_it_off_and_says_why(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed", activate=False)
    alice.post(reverse("campaigns:autoresponder_step_create", args=[ar.pk]), mail_data(subject=""))
    page = alice.post(reverse("campaigns:autoresponder_activate", args=[ar.pk]), follow=True)
    assert "Mail 2: Write a subject." in page.text
    ar.refresh_from_db()
    assert not ar.active


def test_settings_are_saved_and_shown_in_a_sentence(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed", activate=False)
    page = alice.get(reverse("campaigns:autoresponder_edit", args=[ar.pk]))
    assert "Birthdate (Date)" in page.text
    page = alice.post(
        reverse("campaigns:autoresponder_edit", args=[ar.pk]),
        {
            "name": "Birthday",
            "trigger": "date",
            "field_name": "birthdate",
            "date_direction": "before",
            "days": "3",
            "yearly": "on",
            "window_start_hour": "9",
            "window_end_hour": "17",
            "block_days": "",
            "cap_per_member": "",
        },
        follow=True,
    )
    assert "The settings were saved." in page.text
    assert "3 days before the date in Birthdate, every year" in page.text
    assert "09:00 to 17:00 (Europe/Copenhagen)" in page.text
    ar.refresh_from_db()
    assert (ar.trigger, ar.days, ar.yearly, ar.window_start_hour) == ("date", 3, True, 9)


def test_an_active_autoresponder_refuses_settings_it_cannot_run_with(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed")
    page = alice.post(
        reverse("campaigns:autoresponder_edit", args=[ar.pk]),
        {"name": "Welcome", "trigger": "date", "field_name": "level", "days": "0"},
    )
    assert page.status_code == 200
    assert "Choose a date field of the list." in page.text
    ar.refresh_from_db()
    assert ar.trigger == "subscribed"


def test_another_accounts_campaign_cannot_be_the_trigger(alice: Client, club, personas):
    from campaigns.services import campaign_create

    theirs = campaign_create(account=personas.account_b, name="Carol's")
    ar = make_autoresponder(club, trigger="opened", activate=False)
    page = alice.post(
        reverse("campaigns:autoresponder_edit", args=[ar.pk]),
        {"name": "W", "trigger": "opened", "trigger_campaign_id": str(theirs.pk)},
    )
    assert page.status_code == 200
    assert "Carol&#x27;s" not in page.text
    ar.refresh_from_db()
    assert ar.trigger_campaign_id is None


def test_the_mail_editor_previews_as_you_type_with_the_lists_fields(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed", activate=False)
    ann = join(club, "ann@example.net", firstname="Ann")
    step = ar.steps.get()
    page = alice.get(reverse("campaigns:autoresponder_step_edit", args=[ar.pk, step.pk]))
    assert 'id="campaign-form"' in page.text and 'id="preview-frame"' in page.text
    assert f'name="list_ids" value="{club.pk}"' in page.text
    preview = alice.post(
        reverse("campaigns:preview"),
        {
            "campaign_id": step.campaign_id,
            "list_ids": club.pk,
            "subject": "Hej {{ firstname }}, {{ points }} points",
            "html": "<p>{{ level }}</p>",
            "member_id": str(ann.pk),
        },
    ).json()
    assert preview["errors"] == {}
    assert preview["subject"] == "Hej Ann,  points"


def test_editing_a_mail_of_an_active_autoresponder_takes_effect_for_the_next(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed")
    step = ar.steps.select_related("campaign").get()
    before = step.campaign.prepared_at
    alice.post(
        reverse("campaigns:autoresponder_step_edit", args=[ar.pk, step.pk]),
        mail_data(subject="New words", delay="90", delay_unit="minutes"),
    )
    step.refresh_from_db()
    step.campaign.refresh_from_db()
    assert (step.campaign.subject, step.delay_minutes) == ("New words", 90)
    assert before is not None and step.campaign.prepared_at is not None
    assert step.campaign.prepared_at > before  # the senders compile it again
    page = alice.post(
        reverse("campaigns:autoresponder_step_edit", args=[ar.pk, step.pk]),
        mail_data(subject=""),
    )
    assert "Write a subject." in page.text  # an active autoresponder's mail stays complete
    step.campaign.refresh_from_db()
    assert step.campaign.subject == "New words"


def test_links_of_a_mail_that_went_out_cannot_move(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed")
    step = ar.steps.get()
    Delivery.objects.create(campaign_id=step.campaign_id, email="x@example.net", occurrence="1")
    other = HTML.replace("https://bakery.example/cake", "https://bakery.example/bread")
    page = alice.post(
        reverse("campaigns:autoresponder_step_edit", args=[ar.pk, step.pk]), mail_data(html=other)
    )
    assert "cannot change" in page.text
    more = HTML.replace("</body>", '<a href="https://bakery.example/more">More</a></body>')
    alice.post(
        reverse("campaigns:autoresponder_step_edit", args=[ar.pk, step.pk]), mail_data(html=more)
    )
    urls = list(step.campaign.links.order_by("position").values_list("url", flat=True))
    assert urls == ["https://bakery.example/cake", "https://bakery.example/more"]


def test_a_test_of_a_mail_is_sent(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed", activate=False)
    step = ar.steps.get()
    page = alice.post(
        reverse("campaigns:autoresponder_step_test", args=[ar.pk, step.pk]),
        {"emails": "me@example.org"},
        follow=True,
    )
    assert "A test was sent to me@example.org." in page.text
    assert mail.outbox[0].subject == "[Test] Mail 1 for you"


def test_the_overview_counts_each_mails_deliveries(
    alice: Client, club, django_assert_max_num_queries
):
    ar = make_autoresponder(club, trigger="subscribed", delays=(0, 60))
    first, second = ar.steps.order_by("position")
    now = timezone.now()
    for n, status in enumerate(["sent", "sent", "sent", "failed", "queued", "cancelled"]):
        Delivery.objects.create(
            campaign_id=first.campaign_id,
            email=f"m{n}@example.net",
            occurrence="x",
            status=status,
            sent_at=now if status == "sent" else None,
        )
    Delivery.objects.create(
        campaign_id=second.campaign_id, email="m0@example.net", occurrence="x", status="sent"
    )
    with django_assert_max_num_queries(20):
        page = alice.get(reverse("campaigns:autoresponder_detail", args=[ar.pk]))
    cells = page.text
    assert '<p class="stat-value">4</p>' in cells  # sent, both mails
    assert '<p class="stat-value">1</p>' in cells  # failed
    listing = alice.get(reverse("campaigns:autoresponders")).text
    assert "Welcome" in listing and "When a member joins Cake club" in listing


def test_removing_a_mail_needs_it_off_and_deleting_removes_everything(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed", delays=(0, 60))
    first = ar.steps.order_by("position")[0]
    page = alice.post(
        reverse("campaigns:autoresponder_step_delete", args=[ar.pk, first.pk]), follow=True
    )
    assert "Switch the autoresponder off to remove a mail." in page.text
    alice.post(reverse("campaigns:autoresponder_deactivate", args=[ar.pk]))
    alice.post(reverse("campaigns:autoresponder_step_delete", args=[ar.pk, first.pk]))
    assert ar.steps.count() == 1
    campaigns = list(ar.steps.values_list("campaign_id", flat=True))
    alice.post(reverse("campaigns:autoresponder_delete", args=[ar.pk]))
    assert not Autoresponder.objects.filter(pk=ar.pk).exists()
    assert not Delivery.objects.filter(campaign_id__in=campaigns).exists()


def test_the_autoresponder_pages_speak_danish(alice: Client, club):
    ar = make_autoresponder(club, trigger="subscribed", activate=False)
    alice.post(reverse("set_language"), {"language": "da", "next": "/"})
    assert "Autorespondere" in alice.get(reverse("campaigns:autoresponders")).text
    overview = alice.get(reverse("campaigns:autoresponder_detail", args=[ar.pk])).text
    assert "Når et medlem tilmelder sig Cake club" in overview
    step = ar.steps.get()
    editor = alice.get(reverse("campaigns:autoresponder_step_edit", args=[ar.pk, step.pk])).text
    assert "Forhåndsvisning" in editor
    translation.deactivate()  # the requests left Danish active in this thread
