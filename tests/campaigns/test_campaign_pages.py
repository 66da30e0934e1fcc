"""The campaigns dashboard as Alice uses it: list, editor, preview, test, send, progress,
report, and the sender domains in the admin panel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns import pipeline
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, SenderDomain
from members import services as member_services
from tests.campaigns.conftest import HTML, SENDER, Audience
from tests.conftest import Personas


@pytest.fixture
def alice(client: Client, personas: Personas) -> Client:
    client.force_login(personas.alice)
    return client


def editor_data(audience: Audience, **changes) -> dict:
    return {
        "name": "Spring bread",
        "subject": 'Hej {{ firstname | default: "ven" }}',
        "preheader": "",
        "from_name": "Alice's Bakery",
        "from_email": SENDER,
        "reply_to": "",
        "html": HTML,
        "text": "",
        "tracking": "on",
        "list_ids": [audience.list.pk],
        **changes,
    }


# -- the list ----------------------------------------------------------------------------


def test_an_account_without_campaigns_gets_a_helpful_empty_state(alice: Client):
    page = alice.get(reverse("campaigns:list"))
    assert "Write your first campaign" in page.text
    assert 'href="/campaigns/"' in page.text and 'aria-current="page"' in page.text  # nav


def test_the_list_shows_status_and_progress_of_alices_campaigns_only(
    alice: Client, draft: Campaign, personas: Personas
):
    Campaign.objects.create(account=personas.account_b, name="Carol's sale")
    Campaign.objects.create(
        account=personas.account_a,
        name="Half way",
        status=CampaignStatus.SENDING,
        recipients=10,
        sent=4,
        failed=1,
    )

    page = alice.get(reverse("campaigns:list")).text

    assert "Spring bread" in page and "Half way" in page
    assert "Carol's sale" not in page
    assert 'class="badge badge-draft"' in page and 'class="badge badge-sending"' in page
    assert '<progress max="100" value="50"' in page


# -- the editor --------------------------------------------------------------------------


def test_a_new_campaign_is_written_and_saved(alice: Client, audience: Audience, personas):
    page = alice.get(reverse("campaigns:create"))
    assert 'name="list_ids"' in page.text and "Bakery news" in page.text

    response = alice.post(reverse("campaigns:create"), editor_data(audience))

    campaign = Campaign.objects.get(account=personas.account_a)
    assert response["Location"] == reverse("campaigns:edit", args=[campaign.pk])
    assert campaign.created_by == personas.alice
    assert campaign.targets.get().list_id == audience.list.pk


def test_bad_input_is_a_form_error_and_nothing_is_saved(alice: Client, audience: Audience):
    response = alice.post(
        reverse("campaigns:create"), editor_data(audience, name="", from_email="nope")
    )
    assert response.status_code == 200
    assert response.text.count('class="field-error" role="alert"') == 2
    assert not Campaign.objects.exists()


def test_another_accounts_list_is_a_form_error(alice: Client, audience, personas: Personas):
    carols = member_services.list_create(account=personas.account_b, name="Carol's list")
    response = alice.post(reverse("campaigns:create"), editor_data(audience, list_ids=[carols.pk]))
    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert "Carol&#x27;s list" not in response.text
    assert not Campaign.objects.exists()


def test_the_editor_shows_what_blocks_a_send_and_a_sandboxed_preview(
    alice: Client, draft: Campaign
):
    Campaign.objects.filter(pk=draft.pk).update(from_email="news@elsewhere.example")

    page = alice.get(reverse("campaigns:edit", args=[draft.pk])).text

    assert "Before you can send" in page
    assert "elsewhere.example is not one of your verified sender domains" in page
    assert re.search(r'<iframe id="preview-frame" class="preview-frame" sandbox=""', page)
    assert 'srcdoc="&lt;html&gt;' in page  # the server's first preview, escaped
    assert "ann@example.net" in page  # a recipient to preview as
    assert "/static/js/campaigns.js" in page


def test_saving_changes_a_draft(alice: Client, draft: Campaign, audience: Audience):
    response = alice.post(
        reverse("campaigns:edit", args=[draft.pk]), editor_data(audience, subject="Changed")
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.subject == "Changed"


def test_a_scheduled_campaign_opens_its_page_instead_of_the_editor(alice: Client, draft: Campaign):
    pipeline.campaign_start(campaign=draft, at=timezone.now() + timedelta(days=1))
    response = alice.get(reverse("campaigns:edit", args=[draft.pk]))
    assert response["Location"] == reverse("campaigns:detail", args=[draft.pk])


def test_the_live_preview_renders_unsaved_content_as_a_member(alice: Client, audience):
    response = alice.post(
        reverse("campaigns:preview"),
        {
            "subject": "Hi {{ firstname }}",
            "html": "<p>{{ shoe }}</p>",
            "list_ids": [audience.list.pk],
            "member_id": str(audience.ann.pk),
        },
    )
    body = response.json()
    assert (body["errors"], body["subject"]) == ({}, "Hi Ann")
    assert "<p>41</p>" in body["html"]


def test_the_live_preview_names_template_problems_by_field(alice: Client, audience):
    body = alice.post(
        reverse("campaigns:preview"),
        {"subject": "{{ nope }}", "html": "<p>{{ shoe }}", "list_ids": [audience.list.pk]},
    ).json()
    assert set(body["errors"]) == {"subject"}
    without_list = alice.post(reverse("campaigns:preview"), {"html": "{{ shoe }}"}).json()
    assert set(without_list["errors"]) == {"html"}  # shoe is a field of that list only


def test_the_live_preview_never_shows_another_accounts_member(alice: Client, personas: Personas):
    carols = member_services.list_create(account=personas.account_b, name="C")
    stranger = member_services.member_create(member_list=carols, values={"email": "s@x.dk"})
    response = alice.post(reverse("campaigns:preview"), {"member_id": str(stranger.pk)})
    assert response.status_code == 404


def test_a_test_is_sent_and_said_so(alice: Client, draft: Campaign, audience: Audience):
    response = alice.post(
        reverse("campaigns:test", args=[draft.pk]),
        {"emails": "me@example.org, boss@example.org", "member_id": str(audience.bo.pk)},
        follow=True,
    )
    assert "A test was sent to me@example.org, boss@example.org." in response.text
    assert len(mail.outbox) == 2
    assert mail.outbox[0].subject == "[Test] Hej Bo"


def test_a_bad_test_address_is_said_and_nothing_sent(alice: Client, draft: Campaign):
    response = alice.post(
        reverse("campaigns:test", args=[draft.pk]), {"emails": "me@"}, follow=True
    )
    assert "Enter a valid email address." in response.text
    assert not mail.outbox


def test_a_copy_and_a_deleted_draft(alice: Client, draft: Campaign, personas: Personas):
    alice.post(reverse("campaigns:duplicate", args=[draft.pk]))
    copy = Campaign.objects.exclude(pk=draft.pk).get()
    assert copy.name == "Spring bread (copy)"
    response = alice.post(reverse("campaigns:delete", args=[draft.pk]))
    assert response["Location"] == reverse("campaigns:list")
    assert list(Campaign.objects.all()) == [copy]


# -- send --------------------------------------------------------------------------------


def test_save_and_send_leads_to_a_confirmation_naming_the_recipients(
    alice: Client, draft: Campaign, audience: Audience
):
    response = alice.post(
        reverse("campaigns:edit", args=[draft.pk]), {**editor_data(audience), "next": "send"}
    )
    assert response["Location"] == reverse("campaigns:send", args=[draft.pk])

    page = alice.get(response["Location"]).text

    assert "To 3 recipients" in page
    assert "Send now to 3 recipients" in page
    assert 'type="datetime-local"' in page
    assert "Europe/Copenhagen" in page


def test_a_campaign_with_problems_cannot_be_sent_from_the_dialog(alice: Client, draft):
    Campaign.objects.filter(pk=draft.pk).update(subject="")
    page = alice.get(reverse("campaigns:send", args=[draft.pk])).text
    assert "The campaign cannot be sent yet" in page
    assert 'id="send-form"' not in page
    alice.post(reverse("campaigns:send", args=[draft.pk]), {"when": "now"})
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.DRAFT


def test_sending_now_shows_the_progress_with_controls(alice: Client, draft: Campaign):
    response = alice.post(reverse("campaigns:send", args=[draft.pk]), {"when": "now"})
    assert response["Location"] == reverse("campaigns:detail", args=[draft.pk])
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.SENDING

    page = alice.get(response["Location"]).text

    assert 'id="campaign-progress"' in page
    assert reverse("campaigns:status", args=[draft.pk]) in page
    assert reverse("campaigns:pause", args=[draft.pk]) in page
    assert page.count("data-confirm=") >= 2  # pause and cancel are confirmed
    status = alice.get(reverse("campaigns:status", args=[draft.pk])).json()
    assert (status["status"], status["percent"]) == ("sending", 0)


def test_a_schedule_is_read_in_the_accounts_time_zone(alice: Client, draft: Campaign):
    alice.post(
        reverse("campaigns:send", args=[draft.pk]),
        {"when": "later", "scheduled_at": "2099-01-15T08:00"},
    )
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.SCHEDULED
    assert draft.scheduled_at is not None
    assert draft.scheduled_at.isoformat() == "2099-01-15T07:00:00+00:00"  # 08:00 in Copenhagen
    page = alice.get(reverse("campaigns:detail", args=[draft.pk])).text
    assert "Unschedule to edit" in page


@pytest.mark.parametrize("when", ["2001-01-01T08:00", ""])
def test_a_past_or_missing_time_is_a_form_error(alice: Client, draft: Campaign, when: str):
    response = alice.post(
        reverse("campaigns:send", args=[draft.pk]), {"when": "later", "scheduled_at": when}
    )
    assert response.status_code == 200
    assert 'class="field-error" role="alert"' in response.text
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.DRAFT


def test_unscheduling_makes_it_a_draft_again(alice: Client, draft: Campaign):
    pipeline.campaign_start(campaign=draft, at=timezone.now() + timedelta(days=1))
    response = alice.post(reverse("campaigns:unschedule", args=[draft.pk]))
    assert response["Location"] == reverse("campaigns:edit", args=[draft.pk])
    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (CampaignStatus.DRAFT, None)


def test_pause_resume_and_cancel_from_the_page(alice: Client, draft: Campaign):
    pipeline.campaign_start(campaign=draft)
    alice.post(reverse("campaigns:pause", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.PAUSED
    assert "Resume" in alice.get(reverse("campaigns:detail", args=[draft.pk])).text
    alice.post(reverse("campaigns:resume", args=[draft.pk]))
    alice.post(reverse("campaigns:cancel", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.CANCELLED
    refused = alice.post(reverse("campaigns:pause", args=[draft.pk]), follow=True)
    assert "only a campaign that is sending can be paused" in refused.text


# -- the report --------------------------------------------------------------------------


@pytest.fixture
def sent(draft: Campaign, audience: Audience) -> Campaign:
    """The draft, sent: Ann and Cy received it, Bo's address was refused."""
    Delivery.objects.bulk_create(
        [
            Delivery(campaign=draft, member=audience.ann, email="ann@example.net", status="sent"),
            Delivery(
                campaign=draft,
                member=audience.bo,
                email="bo@example.net",
                status=DeliveryStatus.FAILED,
                error="550 5.1.1 mailbox unknown",
            ),
            Delivery(campaign=draft, member=audience.cy, email="cy@example.net", status="sent"),
        ]
    )
    Campaign.objects.filter(pk=draft.pk).update(
        status=CampaignStatus.SENT,
        recipients=3,
        sent=2,
        failed=1,
        started_at=timezone.now(),
        prepared_at=timezone.now(),
        finished_at=timezone.now(),
    )
    draft.refresh_from_db()
    return draft


def test_the_report_shows_who_received_it_and_who_failed_and_why(alice: Client, sent):
    page = alice.get(reverse("campaigns:detail", args=[sent.pk])).text
    assert "ann@example.net" in page and "bo@example.net" in page
    assert "550 5.1.1 mailbox unknown" in page
    assert "1 recipient did not receive it" in page

    failed = alice.get(reverse("campaigns:detail", args=[sent.pk]), {"status": "failed"}).text
    assert "bo@example.net" in failed and "ann@example.net" not in failed


def test_the_report_pages_its_recipients(alice: Client, sent: Campaign):
    Delivery.objects.bulk_create(
        Delivery(campaign=sent, email=f"more{i}@example.net", status="sent") for i in range(60)
    )
    first = alice.get(reverse("campaigns:detail", args=[sent.pk])).text
    assert "Page 1 of 2" in first
    second = alice.get(reverse("campaigns:detail", args=[sent.pk]), {"page": 2}).text
    assert "Page 2 of 2" in second


def test_send_again_makes_a_draft_for_those_who_did_not_receive_it(alice: Client, sent: Campaign):
    response = alice.post(reverse("campaigns:resend", args=[sent.pk]))

    copy = Campaign.objects.get(resend_of=sent)
    assert response["Location"] == reverse("campaigns:edit", args=[copy.pk])
    page = alice.get(response["Location"]).text
    assert "who did not receive it" in page
    assert 'name="list_ids"' not in page  # its recipients are fixed: the undelivered
    assert "<span>1</span> recipient" in page  # Bo


# -- Danish ------------------------------------------------------------------------------


def test_the_campaign_pages_speak_danish(alice: Client, draft: Campaign):
    alice.post(reverse("set_language"), {"language": "da", "next": "/"})
    assert "Kampagner" in alice.get(reverse("campaigns:list")).text
    editor = alice.get(reverse("campaigns:edit", args=[draft.pk])).text
    assert "Forhåndsvisning" in editor
    assert "Send en test" in editor


# -- sender domains in the admin panel ----------------------------------------------------


def test_an_account_manager_verifies_the_sender_domains_of_their_accounts_only(
    client: Client, personas: Personas
):
    mine = SenderDomain.objects.create(account=personas.account_a, domain="bakery.example")
    SenderDomain.objects.create(account=personas.account_b, domain="bikes.example")
    client.force_login(personas.mallory)

    listing = client.get(reverse("admin:campaigns_senderdomain_changelist")).text
    assert "bakery.example" in listing and "bikes.example" not in listing

    client.post(
        reverse("admin:campaigns_senderdomain_changelist"),
        {"action": "verify", "_selected_action": [mine.pk]},
    )
    mine.refresh_from_db()
    assert mine.verified

    added = client.post(
        reverse("admin:campaigns_senderdomain_add"),
        {"account": personas.account_a.pk, "domain": "News.Bakery.Example", "verified": "on"},
    )
    assert added.status_code == 302
    assert SenderDomain.objects.filter(domain="news.bakery.example", verified=True).exists()
    refused = client.post(
        reverse("admin:campaigns_senderdomain_add"),
        {"account": personas.account_b.pk, "domain": "evil.example"},
    )
    assert refused.status_code == 200  # not one of the choices
    assert not SenderDomain.objects.filter(domain="evil.example").exists()
    other = SenderDomain.objects.get(domain="bikes.example")
    assert client.get(
        reverse("admin:campaigns_senderdomain_change", args=[other.pk])
    ).status_code in (
        302,
        404,
    )


def test_customers_do_not_verify_their_own_domains(client: Client, personas: Personas):
    client.force_login(personas.alice)
    response = client.get(reverse("admin:campaigns_senderdomain_changelist"))
    assert response.status_code == 302  # to the admin sign-in
    assert not SenderDomain.objects.exists()
