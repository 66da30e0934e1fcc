"""Fixtures the campaign tests share. Generic on purpose: a verified sender domain for
Alice's account, a list with members, a draft that could be sent; each test file adds
what is special to it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from campaigns.models import Campaign, SenderDomain
from campaigns.services import campaign_create
from members import services as member_services
from members.fields import FieldSpec
from members.models import List, Member, MemberStatus
from tests.api.conftest import alice_api, carol_api  # noqa: F401 - fixtures, for the API tests
from tests.conftest import Personas

SENDER = "news@bakery.example"
HTML = """<html><body>
<h1>Hej {{ firstname | default: "ven" }}</h1>
<p>Your size: {{ shoe }}</p>
<a href="https://bakery.example/bread">Fresh bread</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body></html>"""


@pytest.fixture
def verified_domain(personas: Personas) -> SenderDomain:
    """``bakery.example``, verified for Alice's account (account A)."""
    return SenderDomain.objects.create(
        account=personas.account_a, domain="bakery.example", verified=True
    )


def add_member(
    member_list: List, email: str, status: str = MemberStatus.ACTIVE, **values
) -> Member:
    """A member, put straight into ``status`` (as if they had unsubscribed or bounced)."""
    member = member_services.member_create(
        member_list=member_list, values={"email": email, **values}
    )
    if status != MemberStatus.ACTIVE:
        Member.objects.filter(pk=member.pk).update(status=status, email_status=status)
        member.refresh_from_db()
    return member


@dataclass
class Audience:
    list: List
    ann: Member
    bo: Member
    cy: Member
    gone: Member


@pytest.fixture
def audience(personas: Personas) -> Audience:
    """Alice's list "Bakery news" with a choice field ``shoe``: Ann and Bo (with first
    names), Cy (without), and Gone (unsubscribed)."""
    member_list = member_services.list_create(
        account=personas.account_a,
        name="Bakery news",
        fields=[FieldSpec("shoe", "choice", "Shoe size", options=["40", "41", "42"])],
    )
    return Audience(
        list=member_list,
        ann=add_member(member_list, "ann@example.net", firstname="Ann", shoe=2),  # 41
        bo=add_member(member_list, "bo@example.net", firstname="Bo"),
        cy=add_member(member_list, "cy@example.net"),
        gone=add_member(member_list, "gone@example.net", MemberStatus.UNSUBSCRIBED),
    )


@pytest.fixture
def draft(personas: Personas, verified_domain: SenderDomain, audience: Audience) -> Campaign:
    """A draft of Alice's that could be sent as it is, to the audience list."""
    return campaign_create(
        account=personas.account_a,
        user=personas.alice,
        name="Spring bread",
        subject='Hej {{ firstname | default: "ven" }}',
        preheader="Fresh from the oven",
        from_name="Alice's Bakery",
        from_email=SENDER,
        html=HTML,
        list_ids=[audience.list.pk],
    )
