"""What the autoresponder tests share (no tests here): Alice's "Cake club" list, an
autoresponder with complete steps, and reading back the Delivery rows it wrote."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Account
from campaigns.autoresponders import (
    autoresponder_activate,
    autoresponder_create,
    autoresponder_step_add,
)
from campaigns.models import Delivery, SenderDomain
from campaigns.models_autoresponders import Autoresponder
from members import services as member_services
from members.fields import FieldSpec
from members.models import List, Member
from tests.conftest import Personas

CPH = ZoneInfo("Europe/Copenhagen")
SENDER = "club@bakery.example"
HTML = """<html><body>
<h1>Hej {{ firstname | default: "ven" }}</h1>
<a href="https://bakery.example/cake">Cake</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body></html>"""


def cph(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A wall-clock time in Copenhagen (the list's time zone)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=CPH)


def make_club(account: Account) -> List:
    """The account's list "Cake club" (Copenhagen time) with number, text, yes/no and
    date fields besides the standard ones (birthdate among them); sending is set up."""
    SenderDomain.objects.get_or_create(
        account=account, domain="bakery.example", defaults={"verified": True}
    )
    return member_services.list_create(
        account=account,
        name="Cake club",
        fields=[
            FieldSpec("points", "number", "Points"),
            FieldSpec("level", "text", "Level"),
            FieldSpec("vip", "boolean", "VIP"),
            FieldSpec("renewal", "date", "Renewal"),
        ],
    )


@pytest.fixture
def club(personas: Personas) -> List:
    """Alice's "Cake club" (make_club)."""
    return make_club(personas.account_a)


def join(member_list: List, email: str, **values: Any) -> Member:
    return member_services.member_create(member_list=member_list, values={"email": email, **values})


def make_autoresponder(
    member_list: List,
    *,
    delays: tuple[int, ...] = (0,),
    activate: bool = True,
    **settings: Any,
) -> Autoresponder:
    """An autoresponder on the list with one complete mail per delay (minutes), switched
    on unless told otherwise."""
    ar = autoresponder_create(
        account=member_list.account,
        member_list=member_list,
        name=settings.pop("name", "Welcome"),
        **settings,
    )
    for number, delay in enumerate(delays, start=1):
        autoresponder_step_add(
            autoresponder=ar,
            delay_minutes=delay,
            subject=f"Mail {number} for {{{{ firstname | default: 'you' }}}}",
            from_name="Cake club",
            from_email=SENDER,
            html=HTML,
        )
    if activate:
        autoresponder_activate(autoresponder=ar)
    ar.refresh_from_db()
    return ar


def rows(ar: Autoresponder) -> list[tuple[int, str, str]]:
    """(step position, email, occurrence) of every Delivery row of the autoresponder."""
    return sorted(
        Delivery.objects.filter(campaign__autoresponder_step__autoresponder=ar).values_list(
            "campaign__autoresponder_step__position", "email", "occurrence"
        )
    )


def step_rows(ar: Autoresponder, position: int = 1) -> list[Delivery]:
    return list(
        Delivery.objects.filter(
            campaign__autoresponder_step__autoresponder=ar,
            campaign__autoresponder_step__position=position,
        ).order_by("email", "occurrence")
    )


def mark_sent(ar: Autoresponder, position: int, at: datetime) -> int:
    """As the sender does when the relay accepts: the step's queued rows are sent at `at`."""
    return Delivery.objects.filter(
        campaign__autoresponder_step__autoresponder=ar,
        campaign__autoresponder_step__position=position,
        status="queued",
    ).update(status="sent", sent_at=at)
