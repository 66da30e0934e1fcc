"""Drafts, their checks before a send, and the reads of campaigns (services, selectors)."""

from __future__ import annotations

import json
import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.http import Http404
from django.utils import timezone

from campaigns import pipeline, selectors, services
from campaigns.errors import CampaignError
from campaigns.models import (
    Campaign,
    CampaignStatus,
    CampaignTarget,
    Delivery,
    DeliveryStatus,
    SenderDomain,
)
from campaigns.selectors import Targets
from members import services as member_services
from members.fields import FieldSpec
from members.models import Field, MemberStatus, Segment
from members.segments import segment_create
from members.selectors import Group
from tests.campaigns.conftest import SENDER, Audience, add_member
from tests.conftest import Personas

# -- create, update, delete, duplicate ---------------------------------------------------


def test_a_draft_keeps_its_content_and_targets(personas: Personas, audience: Audience):
    segment = segment_create(
        member_list=audience.list,
        name="Named",
        rules=Group.from_flat({"firstname": {"ie": []}}, "and"),
    )
    other = member_services.list_create(account=personas.account_a, name="Old customers")

    campaign = services.campaign_create(
        account=personas.account_a,
        user=personas.alice,
        name="  Spring  ",
        subject="Hej\nthere",
        from_email="News@Bakery.Example",
        list_ids=[audience.list.pk, audience.list.pk],
        segment_ids=[segment.pk],
        exclude_list_ids=[other.pk],
    )

    assert campaign.status == CampaignStatus.DRAFT
    assert (campaign.name, campaign.subject) == ("Spring", "Hej there")  # one header line
    assert campaign.from_email == "news@bakery.example"
    assert campaign.created_by == personas.alice
    assert selectors.campaign_targets(campaign=campaign) == Targets(
        list_ids=(audience.list.pk,), segment_ids=(segment.pk,), exclude_list_ids=(other.pk,)
    )


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "x", "from_email": "not an address"}, "from_email"),
        ({"name": "x", "reply_to": "@"}, "reply_to"),
        ({"name": "x", "subject": "s" * 256}, "subject"),
    ],
)
def test_malformed_values_are_refused_naming_the_field(personas: Personas, values, field):
    with pytest.raises(CampaignError) as error:
        services.campaign_create(account=personas.account_a, **values)
    assert list(error.value.errors) == [field]
    assert not Campaign.objects.exists()


def test_another_accounts_list_or_segment_is_not_found(personas: Personas):
    carols = member_services.list_create(account=personas.account_b, name="Carol's")
    carols_segment = Segment.objects.create(list=carols, name="S", rules={})
    with pytest.raises(Http404):
        services.campaign_create(account=personas.account_a, name="x", list_ids=[carols.pk])
    with pytest.raises(Http404):
        services.campaign_create(
            account=personas.account_a, name="x", exclude_segment_ids=[carols_segment.pk]
        )
    with pytest.raises(Http404):
        services.campaign_create(account=personas.account_a, name="x", list_ids=[987654])
    assert not Campaign.objects.exists()


def test_a_list_is_not_both_a_target_and_an_exclusion(personas: Personas, audience: Audience):
    with pytest.raises(CampaignError) as error:
        services.campaign_create(
            account=personas.account_a,
            name="x",
            list_ids=[audience.list.pk],
            exclude_list_ids=[audience.list.pk],
        )
    assert list(error.value.errors) == ["exclude_list_ids"]


def test_an_update_changes_only_what_it_is_given(draft: Campaign, audience: Audience, personas):
    other = member_services.list_create(account=personas.account_a, name="Other")

    services.campaign_update(campaign=draft, subject="New subject", exclude_list_ids=[other.pk])

    draft.refresh_from_db()
    assert draft.subject == "New subject"
    assert draft.html.startswith("<html>")
    assert selectors.campaign_targets(campaign=draft) == Targets(
        list_ids=(audience.list.pk,), exclude_list_ids=(other.pk,)
    )
    services.campaign_update(campaign=draft, list_ids=[other.pk], exclude_list_ids=[])
    assert selectors.campaign_targets(campaign=draft) == Targets(list_ids=(other.pk,))


def test_an_update_to_an_unknown_field_is_a_programming_error(draft: Campaign):
    with pytest.raises(TypeError):
        services.campaign_update(campaign=draft, status="sent")


def test_a_scheduled_campaign_is_changed_only_after_unscheduling(draft: Campaign):
    pipeline.campaign_start(campaign=draft, at=timezone.now() + timedelta(days=1))

    with pytest.raises(CampaignError) as error:
        services.campaign_update(campaign=draft, subject="Changed")
    assert "Unschedule" in error.value.errors["status"]

    pipeline.campaign_unschedule(campaign=draft)
    services.campaign_update(campaign=draft, subject="Changed")
    draft.refresh_from_db()
    assert (draft.status, draft.subject, draft.scheduled_at) == ("draft", "Changed", None)


def test_a_campaign_that_went_out_is_neither_changed_nor_deleted(draft: Campaign):
    Campaign.objects.filter(pk=draft.pk).update(status=CampaignStatus.SENT)
    draft.refresh_from_db()
    with pytest.raises(CampaignError):
        services.campaign_update(campaign=draft, name="Other")
    with pytest.raises(CampaignError):
        services.campaign_delete(campaign=draft)
    assert Campaign.objects.filter(pk=draft.pk, name="Spring bread").exists()


def test_a_draft_is_deleted_with_its_targets(draft: Campaign):
    services.campaign_delete(campaign=draft)
    assert not Campaign.objects.filter(pk=draft.pk).exists()
    assert not CampaignTarget.objects.exists()


def test_a_copy_is_a_new_draft_with_the_same_content_and_targets(draft: Campaign, personas):
    Campaign.objects.filter(pk=draft.pk).update(status=CampaignStatus.SENT, recipients=3)

    copy = services.campaign_duplicate(campaign=draft, user=personas.bob)

    assert copy.pk != draft.pk
    assert (copy.status, copy.recipients, copy.created_by) == ("draft", 0, personas.bob)
    assert copy.name == "Spring bread (copy)"
    assert (copy.subject, copy.html, copy.from_email) == (draft.subject, draft.html, SENDER)
    assert selectors.campaign_targets(campaign=copy) == selectors.campaign_targets(campaign=draft)


# -- what blocks a send ------------------------------------------------------------------


def test_a_complete_draft_has_no_problems(draft: Campaign):
    assert services.campaign_problems(campaign=draft) == {}


def test_an_empty_draft_names_everything_that_is_missing(personas: Personas):
    campaign = services.campaign_create(account=personas.account_a, name="Empty")

    problems = services.campaign_problems(campaign=campaign)

    assert set(problems) == {"subject", "html", "from_email", "targets"}


def test_the_sender_must_be_on_a_verified_domain_of_the_account(
    draft: Campaign, personas: Personas
):
    SenderDomain.objects.create(account=personas.account_a, domain="pending.example")
    SenderDomain.objects.create(account=personas.account_b, domain="carol.example", verified=True)
    for address in ("news@pending.example", "news@carol.example", "news@sub.bakery.example"):
        services.campaign_update(campaign=draft, from_email=address)
        problems = services.campaign_problems(campaign=draft)
        assert "bakery.example" in problems["from_email"], address


def test_a_bad_reply_to_written_around_the_service_is_still_caught(draft: Campaign):
    Campaign.objects.filter(pk=draft.pk).update(reply_to="nope")
    draft.refresh_from_db()
    assert set(services.campaign_problems(campaign=draft)) == {"reply_to"}


def test_template_problems_are_keyed_by_part(draft: Campaign):
    services.campaign_update(
        campaign=draft,
        subject="Hi {{ frstname }}",
        html="<p>{{ firstname | default: 'x' }} {{ shoe }}</p>{{ broken",
        text="{{ password }}",
    )

    problems = services.campaign_problems(campaign=draft)

    assert set(problems) == {"subject", "html", "text"}
    assert "frstname" in problems["subject"]


def test_fields_of_the_target_lists_are_known_and_others_are_not(
    draft: Campaign, personas: Personas, audience: Audience
):
    # "shoe" is a field of the target list: fine. "points" is only on another list.
    elsewhere = member_services.list_create(
        account=personas.account_a, name="Other", fields=[FieldSpec("points", "number", "P")]
    )
    services.campaign_update(campaign=draft, html="<p>{{ shoe }} {{ points }}</p>")
    assert set(services.campaign_problems(campaign=draft)) == {"html"}

    services.campaign_update(campaign=draft, list_ids=[audience.list.pk, elsewhere.pk])
    assert services.campaign_problems(campaign=draft) == {}


def test_a_target_with_nobody_to_send_to_is_a_problem(draft: Campaign, personas: Personas):
    empty = member_services.list_create(
        account=personas.account_a, name="Only gone", fields=[FieldSpec("shoe", "choice", "S")]
    )
    add_member(empty, "x@example.net", MemberStatus.UNSUBSCRIBED)
    services.campaign_update(campaign=draft, list_ids=[empty.pk])
    assert set(services.campaign_problems(campaign=draft)) == {"targets"}


def test_a_segment_that_no_longer_fits_its_list_is_a_problem(draft: Campaign, audience):
    segment = segment_create(
        member_list=audience.list,
        name="Big feet",
        rules=Group.from_flat({"shoe": {"eq": ["3"]}}, "and"),
    )
    services.campaign_update(campaign=draft, list_ids=[], segment_ids=[segment.pk])
    Field.objects.filter(list=audience.list, name="shoe").delete()

    problems = services.campaign_problems(campaign=draft)

    assert "Big feet" in problems["targets"]


def test_the_pipeline_refuses_a_draft_with_problems(draft: Campaign):
    services.campaign_update(campaign=draft, subject="")
    with pytest.raises(CampaignError) as error:
        pipeline.campaign_start(campaign=draft)
    assert "subject" in error.value.errors
    draft.refresh_from_db()
    assert draft.status == CampaignStatus.DRAFT


# -- reads -------------------------------------------------------------------------------


def test_another_accounts_campaign_is_not_found(draft: Campaign, personas: Personas):
    assert selectors.campaign_get(account=personas.account_a, campaign_id=draft.pk) == draft
    for wrong in (draft.pk, "x", 2**70):
        with pytest.raises(Http404):
            selectors.campaign_get(account=personas.account_b, campaign_id=wrong)


def test_recipients_are_counted_once_per_address_without_exclusions(
    draft: Campaign, personas: Personas, audience: Audience
):
    other = member_services.list_create(account=personas.account_a, name="Other")
    add_member(other, "ANN@example.net")  # Ann again: counted once
    add_member(other, "dee@example.net")
    vip = member_services.list_create(account=personas.account_a, name="Skip")
    add_member(vip, "bo@example.net", MemberStatus.UNSUBSCRIBED)  # skipped whatever status

    assert selectors.campaign_recipients_count(campaign=draft) == 3  # ann, bo, cy
    services.campaign_update(
        campaign=draft, list_ids=[audience.list.pk, other.pk], exclude_list_ids=[vip.pk]
    )
    assert selectors.campaign_recipients_count(campaign=draft) == 3  # ann, cy, dee
    previews = selectors.preview_members(campaign=draft)
    assert [m.email.lower() for m in previews] == [
        "ann@example.net",
        "cy@example.net",
        "dee@example.net",
    ]


def test_member_values_are_the_text_a_merge_tag_prints(audience: Audience):
    values = selectors.member_values(member=audience.ann)
    assert values["firstname"] == "Ann"
    assert values["shoe"] == "41"  # the label of the choice, not its id
    assert values["email"] == "ann@example.net"
    assert "password" not in values


def test_merge_fields_are_the_standard_ones_and_the_target_lists(
    personas: Personas, audience: Audience
):
    fields = selectors.merge_fields_for(
        account=personas.account_a, targets=Targets(list_ids=(audience.list.pk,))
    )
    assert {"firstname", "email", "shoe"} <= fields.names
    assert "password" not in fields.names
    # Another account's list adds nothing.
    carols = member_services.list_create(
        account=personas.account_b, name="C", fields=[FieldSpec("secret", "text", "S")]
    )
    fields = selectors.merge_fields_for(
        account=personas.account_a, targets=Targets(list_ids=(carols.pk,))
    )
    assert "secret" not in fields.names


def test_the_preview_renders_as_the_member_or_with_fallbacks(draft: Campaign, audience):
    as_ann = selectors.campaign_preview(campaign=draft, member=audience.ann)
    assert as_ann.subject == "Hej Ann"
    assert "Your size: 41" in as_ann.html
    assert 'href="https://bakery.example/bread"' in as_ann.html  # untracked in a preview
    assert selectors.campaign_preview(campaign=draft, member=None).subject == "Hej ven"


def test_deliveries_are_paged_and_filtered_by_status(draft: Campaign):
    Delivery.objects.bulk_create(
        Delivery(
            campaign=draft,
            email=f"r{i}@example.net",
            status=DeliveryStatus.FAILED if i % 3 == 0 else DeliveryStatus.SENT,
        )
        for i in range(7)
    )

    first = selectors.deliveries_for_campaign(campaign=draft, page=1, perpage=5)
    second = selectors.deliveries_for_campaign(campaign=draft, page=2, perpage=5)
    failed = selectors.deliveries_for_campaign(campaign=draft, status="failed")

    assert (first.total, len(first.items), first.num_pages, first.has_next) == (7, 5, 2, True)
    assert [d.email for d in second.items] == ["r5@example.net", "r6@example.net"]
    assert [d.email for d in failed.items] == ["r0@example.net", "r3@example.net", "r6@example.net"]
    assert selectors.delivery_counts(campaign=draft)["failed"] == 3
    with pytest.raises(CampaignError):
        selectors.deliveries_for_campaign(campaign=draft, status="lost")


def test_a_naive_time_is_the_accounts_wall_clock(personas: Personas):
    account = personas.account_a
    account.timezone = "America/New_York"
    at = services.account_time(account=account, moment=datetime(2030, 1, 1, 9, 0))
    assert at.utcoffset() == timedelta(hours=-5)
    aware = datetime(2030, 1, 1, 9, 0, tzinfo=zoneinfo.ZoneInfo("UTC"))
    assert services.account_time(account=account, moment=aware) is aware


# -- sender domains ----------------------------------------------------------------------


def test_a_sender_domain_is_added_once_and_normalised(personas: Personas):
    first = services.sender_domain_add(account=personas.account_a, domain=" Bakery.Example. ")
    again = services.sender_domain_add(account=personas.account_a, domain="bakery.example")
    assert first.pk == again.pk and first.domain == "bakery.example" and not first.verified
    services.sender_domain_verify(sender_domain=first)
    assert selectors.verified_domains(account=personas.account_a) == {"bakery.example"}
    idn = services.sender_domain_add(account=personas.account_a, domain="Bøf.dk")
    assert idn.domain == "bøf.dk".encode("idna").decode("ascii")
    for bad in ("", "news@bakery.example", "no spaces.dk", "localhost"):
        with pytest.raises(CampaignError):
            services.sender_domain_add(account=personas.account_a, domain=bad)


# -- demo data ---------------------------------------------------------------------------


def test_seed_demo_makes_a_verified_domain_and_a_sendable_draft_once(settings, capsys, db):
    settings.DEBUG = True
    call_command("seed_demo", "--json")
    call_command("seed_demo", "--json")

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    campaign = Campaign.objects.get()
    assert result["campaign"]["id"] == campaign.pk
    assert SenderDomain.objects.get(account=campaign.account).verified
    assert services.campaign_problems(campaign=campaign) == {}
