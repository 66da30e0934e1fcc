"""Campaigns through the API, sent the ways Heyloyalty clients send requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import ApiScope
from accounts.services import apikey_create
from campaigns import pipeline
from campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from members import services as member_services
from tests.api.conftest import Api
from tests.campaigns.conftest import HTML, SENDER, Audience
from tests.conftest import Personas

NEW = {
    "name": "Spring bread",
    "subject": 'Hej {{ firstname | default: "ven" }}',
    "from_name": "Alice's Bakery",
    "from_email": SENDER,
    "html": HTML,
    "tracking": "1",
}


def path(campaign: Campaign | int, action: str = "") -> str:
    pk = campaign if isinstance(campaign, int) else campaign.pk
    return f"campaigns/{pk}" + (f"/{action}" if action else "")


# -- create and read ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "form", "multipart"])
def test_a_campaign_is_created_in_every_body_encoding(
    alice_api: Api, audience: Audience, verified_domain, encoding: str
):
    body = {**NEW, "list_ids": [audience.list.pk]}
    response = getattr(alice_api, encoding)("POST", "campaigns", body)

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["status"] == "draft"
    assert created["list_ids"] == [audience.list.pk]
    assert created["tracking"] is True
    assert created["recipients"] == 3  # ann, bo, cy; not the unsubscribed
    assert created["problems"] == {}
    assert Campaign.objects.get(pk=created["id"]).name == "Spring bread"


def test_list_ids_may_come_as_a_comma_separated_string(alice_api: Api, personas, audience):
    other = member_services.list_create(account=personas.account_a, name="Other")
    response = alice_api.form(
        "POST", "campaigns", {"name": "x", "list_ids": f"{audience.list.pk},{other.pk}"}
    )
    assert response.json()["list_ids"] == [audience.list.pk, other.pk]


def test_a_draft_that_cannot_be_sent_yet_is_saved_and_says_why(alice_api: Api):
    response = alice_api.json("POST", "campaigns", {"name": "Idea", "html": "<p>{{ nope }}</p>"})

    assert response.status_code == 201
    assert set(response.json()["problems"]) == {"subject", "html", "from_email", "targets"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "x", "from_email": "not-an-address"}, "from_email"),
        ({"name": "x", "list_ids": ["one"]}, "list_ids"),
        ({"name": "x", "tracking": "maybe"}, "tracking"),
        ({"name": "x", "subject": {"a": 1}}, "subject"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(alice_api: Api, body, field):
    response = alice_api.json("POST", "campaigns", body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Campaign.objects.exists()


def test_another_accounts_list_as_a_target_is_a_404(alice_api: Api, personas: Personas):
    carols = member_services.list_create(account=personas.account_b, name="Carol's")
    response = alice_api.json("POST", "campaigns", {"name": "x", "list_ids": [carols.pk]})
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "Not Found"}
    assert not Campaign.objects.exists()


def test_the_list_is_paged_newest_first_and_filtered_by_status(
    alice_api: Api, carol_api: Api, personas: Personas
):
    for name in ("one", "two", "three"):
        Campaign.objects.create(account=personas.account_a, name=name)
    Campaign.objects.filter(name="one").update(status=CampaignStatus.SENT)

    page = alice_api.get("campaigns", {"perpage": 2}).json()
    sent = alice_api.get("campaigns/", {"status": "sent"}).json()  # trailing slash too

    assert [c["name"] for c in page["campaigns"]] == ["three", "two"]
    assert (page["total"], page["page"], page["perpage"]) == (3, 1, 2)
    assert [c["name"] for c in sent["campaigns"]] == ["one"]
    assert carol_api.get("campaigns").json()["total"] == 0
    assert alice_api.get("campaigns", {"status": "lost"}).json()["field"] == "status"
    assert alice_api.get("campaigns", {"perpage": 0}).json()["field"] == "perpage"


def test_a_campaign_reads_with_content_targets_progress_and_statistics(
    alice_api: Api, draft: Campaign
):
    body = alice_api.get(path(draft) + "/").json()

    assert body["id"] == draft.pk
    assert body["html"] == HTML
    assert body["from_email"] == SENDER
    assert body["progress"] == 0
    assert body["statistics"]["unsubscribes"] == 0
    assert body["created_at"].endswith(("+01:00", "+02:00"))  # the account's zone
    assert alice_api.get(path(987654)).status_code == 404


# -- change ------------------------------------------------------------------------------


def test_patch_changes_only_what_is_sent(alice_api: Api, draft: Campaign):
    response = alice_api.form("PATCH", path(draft), {"subject": "New", "tracking": "0"})

    assert response.status_code == 200
    body = response.json()
    assert (body["subject"], body["tracking"], body["html"]) == ("New", False, HTML)


def test_patch_of_a_campaign_that_is_not_a_draft_is_refused(alice_api: Api, draft: Campaign):
    pipeline.campaign_start(campaign=draft, at=timezone.now() + timedelta(days=2))

    response = alice_api.json("PATCH", path(draft), {"subject": "Too late"})

    assert response.status_code == 400
    assert response.json()["field"] == "status"
    draft.refresh_from_db()
    assert draft.subject != "Too late"


# -- send, schedule, control -------------------------------------------------------------


def test_send_now_starts_the_send(alice_api: Api, draft: Campaign):
    response = alice_api.call("POST", path(draft, "send"))

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "sending"
    again = alice_api.call("POST", path(draft, "send"))
    assert again.status_code == 400
    assert again.json()["field"] == "status"


def test_a_naive_scheduled_at_is_the_accounts_local_time(alice_api: Api, draft: Campaign):
    response = alice_api.json("POST", path(draft, "send"), {"scheduled_at": "2099-06-01 09:30"})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["scheduled_at"] == "2099-06-01T09:30:00+02:00"  # Copenhagen, summer


def test_an_aware_scheduled_at_keeps_its_offset(alice_api: Api, draft: Campaign):
    alice_api.json("POST", path(draft, "send"), {"scheduled_at": "2099-01-01T08:00:00Z"})
    draft.refresh_from_db()
    assert draft.scheduled_at is not None
    assert draft.scheduled_at.isoformat() == "2099-01-01T08:00:00+00:00"


@pytest.mark.parametrize(
    ("scheduled_at", "field"), [("2001-01-01T10:00", "scheduled_at"), ("soon", "scheduled_at")]
)
def test_a_past_or_unreadable_time_is_refused(alice_api: Api, draft, scheduled_at, field):
    response = alice_api.form("POST", path(draft, "send"), {"scheduled_at": scheduled_at})
    assert response.status_code == 400
    assert response.json()["field"] == field
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_a_send_with_problems_is_refused_naming_each(alice_api: Api, draft: Campaign):
    Campaign.objects.filter(pk=draft.pk).update(subject="", html="{{ nope }}")

    response = alice_api.call("POST", path(draft, "send"))

    assert response.status_code == 400
    body = response.json()
    assert body["field"] in ("subject", "html")
    assert set(body["errors"]) == {"subject", "html"}


def test_pause_resume_and_cancel_follow_the_state_machine(alice_api: Api, draft: Campaign):
    assert alice_api.call("POST", path(draft, "pause")).json()["field"] == "status"
    pipeline.campaign_start(campaign=draft)

    paused = alice_api.call("POST", path(draft, "pause") + "/")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    assert alice_api.call("POST", path(draft, "pause")).status_code == 400
    resumed = alice_api.call("POST", path(draft, "resume"))
    assert resumed.json()["status"] == "sending"
    cancelled = alice_api.call("POST", path(draft, "cancel"))
    assert cancelled.json()["status"] == "cancelled"
    assert alice_api.call("POST", path(draft, "resume")).json()["field"] == "status"


def test_a_read_only_key_reads_but_does_not_send(personas: Personas, draft: Campaign):
    api_key, secret = apikey_create(account=personas.account_a, name="reports", scope=ApiScope.READ)
    reader = Api(api_key.key, secret)
    assert reader.get(path(draft)).status_code == 200
    assert reader.call("POST", path(draft, "send")).status_code == 403
    assert reader.json("PATCH", path(draft), {"name": "x"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == "draft"


# -- deliveries, tests, preview ----------------------------------------------------------


def test_deliveries_are_paged_like_members_and_filtered_by_status(alice_api: Api, draft: Campaign):
    Delivery.objects.bulk_create(
        Delivery(
            campaign=draft,
            email=f"r{i}@example.net",
            status=DeliveryStatus.FAILED if i == 1 else DeliveryStatus.SENT,
            error="550 no such user" if i == 1 else "",
        )
        for i in range(3)
    )

    page = alice_api.get(path(draft, "deliveries"), {"perpage": 2, "page": 2}).json()
    failed = alice_api.get(path(draft, "deliveries"), {"status": "failed"}).json()

    assert [d["email"] for d in page["deliveries"]] == ["r2@example.net"]
    assert (page["total"], page["counts"]["sent"], page["counts"]["failed"]) == (3, 2, 1)
    assert failed["deliveries"][0]["error"] == "550 no such user"
    bad = alice_api.get(path(draft, "deliveries"), {"status": "lost"})
    assert (bad.status_code, bad.json()["field"]) == (400, "status")


def test_a_test_send_goes_to_the_given_addresses_as_the_member(
    alice_api: Api, draft: Campaign, audience: Audience
):
    response = alice_api.json(
        "POST",
        path(draft, "test"),
        {"emails": ["me@example.org", "you@example.org"], "member_id": str(audience.ann.pk)},
    )

    assert response.status_code == 200, response.content
    assert sorted(m.to[0] for m in mail.outbox) == ["me@example.org", "you@example.org"]
    assert "Hej Ann" in mail.outbox[0].subject
    assert not Delivery.objects.exists()  # not counted anywhere


@pytest.mark.parametrize(
    "body", [{}, {"emails": "a@x.dk,not-an-address"}, {"emails": [f"{i}@x.dk" for i in range(11)]}]
)
def test_a_test_send_needs_one_to_ten_addresses(alice_api: Api, draft: Campaign, body):
    response = alice_api.json("POST", path(draft, "test"), body)
    assert response.status_code == 400
    assert response.json()["field"] == "emails"
    assert not mail.outbox


def test_a_test_send_as_another_accounts_member_is_a_404(
    alice_api: Api, draft: Campaign, personas: Personas
):
    carols = member_services.list_create(account=personas.account_b, name="C")
    stranger = member_services.member_create(member_list=carols, values={"email": "s@x.dk"})
    response = alice_api.json(
        "POST", path(draft, "test"), {"emails": "me@x.dk", "member_id": str(stranger.pk)}
    )
    assert response.status_code == 404
    preview = alice_api.get(path(draft, "preview"), {"member_id": str(stranger.pk)})
    assert preview.status_code == 404
    assert alice_api.get(path(draft, "preview"), {"member_id": "not-a-uuid"}).status_code == 404


def test_the_preview_renders_as_the_member_or_with_fallbacks(
    alice_api: Api, draft: Campaign, audience: Audience
):
    as_ann = alice_api.get(path(draft, "preview"), {"member_id": str(audience.ann.pk)}).json()
    anyone = alice_api.get(path(draft, "preview")).json()

    assert as_ann["subject"] == "Hej Ann"
    assert "Your size: 41" in as_ann["html"]
    assert as_ann["text"]  # generated from the HTML
    assert (anyone["subject"], anyone["member_id"]) == ("Hej ven", None)


def test_a_template_error_in_the_preview_names_the_part(alice_api: Api, draft: Campaign):
    Campaign.objects.filter(pk=draft.pk).update(html="<p>{{ firstname </p>")
    response = alice_api.get(path(draft, "preview"))
    assert response.status_code == 400
    assert response.json()["field"] == "html"


def test_an_autoresponders_mail_cannot_be_paused_or_cancelled_as_a_campaign(
    alice_api: Api, personas: Personas
):
    from tests.campaigns.test_autoresponders_support import make_autoresponder, make_club

    step = make_autoresponder(make_club(personas.account_a)).steps.get()
    for action in ("pause", "cancel", "resume"):
        answer = alice_api.call("POST", path(step.campaign_id, action))
        assert (answer.status_code, answer.json()["field"]) == (400, "status"), action
        assert "autoresponder" in answer.json()["error"]
    assert Campaign.objects.get(pk=step.campaign_id).status == CampaignStatus.SENDING
    # Its statistics are still the campaign's.
    assert alice_api.get(path(step.campaign_id, "statistics")).status_code == 200
