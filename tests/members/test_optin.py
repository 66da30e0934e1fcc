"""Double opt-in: the confirmation mail, its signed link, and what unconfirmed means."""

from __future__ import annotations

import re

from django.test import Client

from members import services
from members.models import Member, MemberStatus
from members.optin import optin_send, optin_token
from tests.api.conftest import Api
from tests.conftest import Personas


def optin_list(personas: Personas):
    return services.list_create(account=personas.account_a, name="Nyheder", double_optin=True)


def test_a_new_member_of_a_double_optin_list_is_unconfirmed_and_mailed(
    personas: Personas, smtp_server, django_capture_on_commit_callbacks
):
    member_list = optin_list(personas)
    with django_capture_on_commit_callbacks() as callbacks:
        member = services.member_create(member_list=member_list, values={"email": "ny@example.dk"})
    assert member.status == MemberStatus.UNCONFIRMED
    assert len(callbacks) == 1  # the mail is queued after commit, not sent in the transaction
    assert optin_send(member_id=str(member.pk))
    ((recipients, message),) = smtp_server.messages
    assert recipients == ["ny@example.dk"]
    assert "confirm" in message["Subject"].lower()
    assert message["Message-ID"]
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    link = re.search(r"https?://\S+/optin/\S+/", text.get_payload(decode=True).decode())
    assert link


def test_the_link_confirms_the_member(client: Client, personas: Personas):
    member = services.member_create(
        member_list=optin_list(personas), values={"email": "c@example.dk"}
    )
    page = client.get(f"/optin/{optin_token(member)}/")
    assert page.status_code == 200
    assert "confirmed" in page.text
    member.refresh_from_db()
    assert member.status == MemberStatus.ACTIVE
    assert client.get(f"/optin/{optin_token(member)}/").status_code == 200  # twice is fine


def test_a_tampered_or_expired_link_confirms_nothing(
    client: Client, personas: Personas, time_machine
):
    time_machine.move_to("2026-01-01 12:00:00+00:00", tick=False)
    member = services.member_create(
        member_list=optin_list(personas), values={"email": "x@example.dk"}
    )
    token = optin_token(member)
    assert client.get(f"/optin/{token[:-2]}xx/").status_code == 404
    time_machine.move_to("2026-02-05 12:00:00+00:00", tick=False)
    assert client.get(f"/optin/{token}/").status_code == 404
    member.refresh_from_db()
    assert member.status == MemberStatus.UNCONFIRMED


def test_skip_optin_from_the_api_makes_the_member_active(personas: Personas):
    from accounts.services import apikey_create

    api_key, secret = apikey_create(account=personas.account_a, name="shop")
    alice_api = Api(api_key.key, secret)
    member_list = optin_list(personas)
    response = alice_api.json(
        "POST", f"lists/{member_list.pk}/members", {"email": "shop@example.dk", "skipOptIn": 1}
    )
    assert Member.objects.get(pk=response.json()["id"]).status == MemberStatus.ACTIVE
    response = alice_api.json("POST", f"lists/{member_list.pk}/members", {"email": "s2@example.dk"})
    assert Member.objects.get(pk=response.json()["id"]).status == MemberStatus.UNCONFIRMED


def test_lists_without_double_optin_mail_nobody(
    personas: Personas, django_capture_on_commit_callbacks
):
    plain = services.list_create(account=personas.account_a, name="Plain")
    with django_capture_on_commit_callbacks() as callbacks:
        services.member_create(member_list=plain, values={"email": "p@example.dk"})
    assert callbacks == []
