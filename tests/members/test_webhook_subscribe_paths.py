"""The webhook events of a member's own doing on the public pages, received over real
HTTP: confirming a double opt-in link is when a member subscribes, and the preferences
page unsubscribes from a list and subscribes to it again."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from campaigns.tokens import unsubscribe_token
from members import services
from members.imports import ImportOptions, import_create, import_run
from members.models import List, Member, MemberStatus, WebhookDelivery
from members.optin import optin_token
from members.webhook_delivery import webhooks_emit_import
from tests.api.conftest import Api
from tests.conftest import Personas
from tests.members.test_webhook_delivery import check_signatures
from tests.members.test_webhook_delivery_support import (
    Receiver,
    alice_api,
    allow_private,
    make_hook,
    queued,
    receiver,
)

__all__ = ["alice_api", "allow_private", "queued", "receiver"]  # fixtures


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def optin_list(personas: Personas) -> List:
    return services.list_create(account=personas.account_a, name="Nyheder", double_optin=True)


def events(receiver: Receiver) -> list[tuple[str, str, str]]:
    """What the receiver got: (type, member id, member status) per request."""
    return [
        (body["type"], body["member_id"], body["member"]["status"]["status"])
        for body in (request.json() for request in receiver.requests)
    ]


def test_a_member_subscribes_when_confirming_the_optin_link(
    optin_list: List,
    alice_api: Api,
    receiver: Receiver,
    allow_private,
    queued,
    django_capture_on_commit_callbacks,
):
    hook = make_hook(optin_list, receiver.url, "subscribe", "update")
    with django_capture_on_commit_callbacks(execute=True):
        created = alice_api.json(
            "POST", f"lists/{optin_list.pk}/members", {"email": "ny@example.dk"}
        )
    member = Member.objects.get(pk=created.json()["id"])
    assert member.status == MemberStatus.UNCONFIRMED
    assert receiver.requests == []  # not subscribed yet: only an address to confirm

    with django_capture_on_commit_callbacks(execute=True):
        page = Client().get(f"/optin/{optin_token(member)}/")
    assert page.status_code == 200

    assert events(receiver) == [("subscribe", str(member.pk), "active")]
    check_signatures(receiver.requests[0], hook.secret)
    assert receiver.requests[0].json()["member"]["fields"]["email"] == "ny@example.dk"

    with django_capture_on_commit_callbacks(execute=True):
        Client().get(f"/optin/{optin_token(member)}/")  # a second click
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == "delivered"


def test_a_member_who_needs_no_confirmation_subscribes_at_once(
    optin_list: List, receiver: Receiver, allow_private, queued, django_capture_on_commit_callbacks
):
    make_hook(optin_list, receiver.url, "subscribe")
    with django_capture_on_commit_callbacks(execute=True):
        member = services.member_create(
            member_list=optin_list, values={"email": "shop@example.dk"}, skip_optin=True
        )

    assert events(receiver) == [("subscribe", str(member.pk), "active")]


def test_an_imported_member_to_confirm_is_announced_when_confirming_not_twice(
    optin_list: List, receiver: Receiver, allow_private, queued, django_capture_on_commit_callbacks
):
    make_hook(optin_list, receiver.url, "subscribe")
    job = import_create(
        member_list=optin_list,
        upload=io.BytesIO(b"email\nimp1@example.dk\nimp2@example.dk\n"),
        options=ImportOptions(trigger_optin=True),
    )
    with django_capture_on_commit_callbacks(execute=False):  # no opt-in mail in this test
        import_run(import_id=job.pk)
    first, second = Member.objects.filter(list=optin_list).order_by("email")
    assert (first.status, second.status) == (MemberStatus.UNCONFIRMED, MemberStatus.UNCONFIRMED)
    assert webhooks_emit_import(import_id=job.pk, created_at=first.created_at.isoformat()) == 0

    with django_capture_on_commit_callbacks(execute=True):
        Client().get(f"/optin/{optin_token(first)}/")

    assert events(receiver) == [("subscribe", str(first.pk), "active")]
    assert webhooks_emit_import(import_id=job.pk, created_at=first.created_at.isoformat()) == 1


def test_the_preferences_page_unsubscribes_and_subscribes_again(
    personas: Personas,
    receiver: Receiver,
    allow_private,
    queued,
    django_capture_on_commit_callbacks,
):
    news = services.list_create(account=personas.account_a, name="Nyheder")
    offers = services.list_create(account=personas.account_a, name="Tilbud")
    hans = services.member_create(member_list=news, values={"email": "hans@example.dk"})
    hans_offers = services.member_create(member_list=offers, values={"email": "hans@example.dk"})
    hook = make_hook(offers, receiver.url, "subscribe", "unsubscribe")
    make_hook(news, receiver.url, "update")  # news changes nothing it listens for
    url = f"/u/{unsubscribe_token(hans.pk)}/preferences"
    person = Client(enforce_csrf_checks=True)  # a recipient: no session, no CSRF cookie

    with django_capture_on_commit_callbacks(execute=True):
        assert person.post(url, {"list": [str(news.pk)]}).status_code == 302
    assert events(receiver) == [("unsubscribe", str(hans_offers.pk), "unsubscribed")]

    with django_capture_on_commit_callbacks(execute=True):
        assert person.post(url, {"list": [str(news.pk), str(offers.pk)]}).status_code == 302
    assert events(receiver)[1:] == [("subscribe", str(hans_offers.pk), "active")]
    check_signatures(receiver.requests[1], hook.secret)
    body = receiver.requests[1].json()
    assert body["list_id"] == offers.pk
    assert body["member"]["fields"]["email"] == "hans@example.dk"
    hans_offers.refresh_from_db()
    assert (hans_offers.status, hans_offers.consent_source) == ("active", "preferences")

    with django_capture_on_commit_callbacks(execute=True):  # saving the same again
        person.post(url, {"list": [str(news.pk), str(offers.pk)]})
    assert len(receiver.requests) == 2
