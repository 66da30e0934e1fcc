"""The consent flow end to end, with real mail through an SMTP server: Oscar manages
account B, which asks first; Carol owns it.

Request in the admin panel -> mail to the owners -> approve by the link (signed in as
an owner) -> access -> expiry; revoke; and every refused case, each logged.
"""

from __future__ import annotations

from datetime import timedelta

from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import consent, tasks
from accounts.models import AccessGrant, AccessRequest, AccessRequestStatus
from tests.accounts.test_consent_support import (
    ask,
    carol_user_page,
    eager,
    events,
    html_of,
    last_event,
    links_in,
    oscar,
    request_url,
    signed_in,
    text_of,
)
from tests.conftest import Personas

__all__ = ["eager"]  # fixtures

LOGIN = reverse("accounts:login")


def test_request_approve_by_link_access_and_expiry(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    manager = signed_in(oscar())
    page = carol_user_page(personas)

    # 1. Without a grant Oscar is refused, and the refusal is logged for account B.
    refused = manager.get(page)
    assert refused.status_code == 403
    assert "approval" in refused.text
    assert request_url(personas.account_b.pk) in refused.text  # how to ask
    assert last_event(action="access.refused").account_id == personas.account_b.pk

    # 2. He asks, with a reason; the owner gets a mail with two signed links.
    access_request = ask(
        manager,
        personas.account_b.pk,
        "Your bounce rate doubled",
        django_capture_on_commit_callbacks,
    )
    assert access_request.status == AccessRequestStatus.PENDING
    ((recipients, message),) = smtp_server.messages
    assert recipients == ["carol@b.test"]
    assert "Account B Bikes" in message["Subject"]
    assert message["Message-ID"]
    body = text_of(message)
    assert "Oscar Othermanager" in body
    assert "Your bounce rate doubled" in body
    assert "72 hours" in body
    links = links_in(message)
    assert links["approve"] in html_of(message)
    requested = last_event(action="consent.requested")
    assert (requested.account_id, requested.actor_email) == (
        personas.account_b.pk,
        "oscar@heyloyalty.test",
    )
    assert requested.reason == "Your bounce rate doubled"

    # 3. Carol follows the approve link: sign-in first, then back to the link.
    owner = Client()
    to_login = owner.get(links["approve"])
    assert to_login.status_code == 302
    assert to_login["Location"].startswith(f"{LOGIN}?next=")
    signed = owner.post(
        to_login["Location"], {"username": "carol@b.test", "password": personas.password}
    )
    assert signed.status_code == 302
    assert signed["Location"] == links["approve"]
    form = owner.get(links["approve"])
    assert form.status_code == 200
    assert "Your bounce rate doubled" in form.text
    assert "24 hours" in form.text
    approved = owner.post(links["approve"], {"hours": "4"}, follow=True)
    assert approved.redirect_chain[-1][0] == reverse("accounts:access")
    assert "has access until" in approved.text
    grant = AccessGrant.objects.get(request=access_request)
    assert grant.manager == oscar()
    assert grant.expires_at - grant.created_at == timedelta(hours=4)
    event = last_event(action="consent.approved")
    assert (event.actor_email, event.grant_id, event.extra["hours"]) == (
        "carol@b.test",
        grant.pk,
        4,
    )

    # 4. Oscar now works in the account; the page is logged under the grant.
    assert manager.get(page).status_code == 200
    seen = last_event(actor_email="oscar@heyloyalty.test")
    assert (seen.action, seen.grant_id, seen.status) == ("admin.view", grant.pk, 200)

    # 5. After four hours the grant has ended: refused again, and logged as expired.
    time_machine.shift(timedelta(hours=4, minutes=1))
    assert manager.get(page).status_code == 403
    refusal = last_event(action="access.refused")
    assert (refusal.account_id, refusal.reason) == (personas.account_b.pk, "expired")


def test_the_owner_denies_by_the_deny_link(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks
):
    access_request = ask(
        signed_in(oscar()),
        personas.account_b.pk,
        "Check a list",
        django_capture_on_commit_callbacks,
    )
    links = links_in(smtp_server.messages[0][1])
    owner = signed_in(personas.carol)
    assert "Deny access" in owner.get(links["deny"]).text
    assert owner.post(links["deny"]).status_code == 302
    access_request.refresh_from_db()
    assert access_request.status == AccessRequestStatus.DENIED
    assert not AccessGrant.objects.exists()
    assert last_event(action="consent.denied").actor_email == "carol@b.test"
    # The approve link of the same mail no longer works either.
    assert owner.get(links["approve"]).status_code == 410


def test_a_revoked_grant_is_refused_at_once_and_logged(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks
):
    manager = signed_in(oscar())
    ask(manager, personas.account_b.pk, "Fix the import", django_capture_on_commit_callbacks)
    owner = signed_in(personas.carol)
    owner.post(links_in(smtp_server.messages[0][1])["approve"], {"hours": "24"})
    grant = AccessGrant.objects.get()
    assert manager.get(carol_user_page(personas)).status_code == 200

    revoked = owner.post(reverse("accounts:access_grant_revoke", args=[grant.pk]), follow=True)
    assert "Access revoked" in revoked.text
    assert last_event(action="consent.revoked").grant_id == grant.pk

    refused = manager.get(carol_user_page(personas))
    assert refused.status_code == 403
    assert "revoked" in refused.text
    event = last_event(action="access.refused")
    assert (event.account_id, event.reason) == (personas.account_b.pk, "revoked")
    # Revoking twice changes nothing and logs nothing more.
    before = len(events("consent.revoked"))
    owner.post(reverse("accounts:access_grant_revoke", args=[grant.pk]))
    assert len(events("consent.revoked")) == before


def test_a_forged_link_is_refused_and_logged(personas: Personas, client: Client):
    access_request = consent.AccessRequest.objects.create(
        account=personas.account_b, manager=oscar(), reason="r", nonce="n1"
    )
    good = consent.link_token(access_request, "approve")
    client.force_login(personas.carol)
    other_salt = signing.dumps({"r": access_request.pk, "n": "n1", "a": "approve"}, salt="x")
    for token in (good[:-3] + "abc", "garbage", other_salt):
        page = client.get(reverse("accounts:access_link", args=[token]))
        assert page.status_code == 400
        assert "not valid" in page.text
        assert (
            client.post(reverse("accounts:access_link", args=[token]), {"hours": 1}).status_code
            == 400
        )
    refused = events("consent.link_refused")
    assert len(refused) == 6
    assert {e.reason for e in refused} == {"forged"}
    assert not AccessGrant.objects.exists()
    access_request.refresh_from_db()
    assert access_request.status == AccessRequestStatus.PENDING


def test_an_expired_link_is_refused_and_logged(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    ask(
        signed_in(oscar()),
        personas.account_b.pk,
        "Look at the import",
        django_capture_on_commit_callbacks,
    )
    links = links_in(smtp_server.messages[0][1])
    time_machine.shift(timedelta(hours=72, minutes=1))
    owner = signed_in(personas.carol)
    page = owner.get(links["approve"])
    assert page.status_code == 410
    assert "expired" in page.text
    assert owner.post(links["approve"], {"hours": "1"}).status_code == 410
    event = last_event(action="consent.link_refused")
    assert (event.account_id, event.reason) == (personas.account_b.pk, "expired")
    assert not AccessGrant.objects.exists()
    # Nor can it be approved on the dashboard any more: it is no longer listed.
    assert "waiting for your answer" not in owner.get(reverse("accounts:access")).text
    # The hourly job marks it expired; the manager may ask again.
    assert tasks.expire_access_requests.apply().get() == 1
    assert AccessRequest.objects.get().status == AccessRequestStatus.EXPIRED
    assert tasks.expire_access_requests.apply().get() == 0


def test_a_reused_link_is_refused_and_logged(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks
):
    ask(signed_in(oscar()), personas.account_b.pk, "Once", django_capture_on_commit_callbacks)
    approve = links_in(smtp_server.messages[0][1])["approve"]
    owner = signed_in(personas.carol)
    assert owner.post(approve, {"hours": "1"}).status_code == 302
    again = owner.post(approve, {"hours": "24"})
    assert again.status_code == 410
    assert "already been used" in again.text
    assert owner.get(approve).status_code == 410
    assert AccessGrant.objects.count() == 1
    assert AccessGrant.objects.get().expires_at - AccessGrant.objects.get().created_at == timedelta(
        hours=1
    )
    assert [e.reason for e in events("consent.link_refused")] == ["used", "used"]


def test_only_an_owner_of_the_account_may_answer(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks
):
    ask(
        signed_in(oscar()), personas.account_b.pk, "Owners only", django_capture_on_commit_callbacks
    )
    approve = links_in(smtp_server.messages[0][1])["approve"]
    for someone in (personas.alice, personas.bob, personas.mallory, oscar()):
        client = signed_in(someone)
        page = client.get(approve)
        assert page.status_code == 403, someone
        assert "Account B Bikes" not in page.text
        assert client.post(approve, {"hours": "24"}).status_code == 403
    assert not AccessGrant.objects.exists()
    assert {e.reason for e in events("consent.link_refused")} == {"not_owner"}
    # The link still works for Carol afterwards.
    assert signed_in(personas.carol).post(approve, {"hours": "1"}).status_code == 302


def test_a_request_without_a_reason_is_a_form_error(
    personas: Personas, smtp_server, django_capture_on_commit_callbacks
):
    manager = signed_in(oscar())
    for reason in ("", "   \n "):
        with django_capture_on_commit_callbacks() as callbacks:
            page = manager.post(request_url(personas.account_b.pk), {"reason": reason})
        assert page.status_code == 200
        assert "Say why you need access." in page.text
        assert callbacks == []
    assert not AccessRequest.objects.exists()
    assert not events("consent.requested")
    assert smtp_server.messages == []


def test_a_manager_not_assigned_to_the_account_is_refused_and_logged(
    personas: Personas, django_capture_on_commit_callbacks
):
    mallory = signed_in(personas.mallory)
    for method in ("get", "post"):
        with django_capture_on_commit_callbacks() as callbacks:
            page = getattr(mallory, method)(
                request_url(personas.account_b.pk), {"reason": "Let me in"}
            )
        assert page.status_code == 403
        assert "not the account manager" in page.text
        assert "Account B Bikes" not in page.text
        assert callbacks == []
    refused = events("access.refused", account_id=personas.account_b.pk)
    assert [(e.actor_email, e.reason) for e in refused] == [
        ("mallory@heyloyalty.test", "not_assigned")
    ] * 2
    assert not AccessRequest.objects.exists()
    # The service refuses too, whoever calls it.
    try:
        consent.access_request_create(
            account=personas.account_b, manager=personas.mallory, reason="Let me in"
        )
    except consent.ConsentError as error:
        assert error.code == "not_assigned"
    else:
        raise AssertionError("a manager not assigned to the account could ask")


def test_an_approval_is_refused_when_the_manager_was_moved_since(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks
):
    ask(signed_in(oscar()), personas.account_b.pk, "Moved", django_capture_on_commit_callbacks)
    approve = links_in(smtp_server.messages[0][1])["approve"]
    personas.account_b.manager = personas.mallory
    personas.account_b.save()
    page = signed_in(personas.carol).post(approve, {"hours": "4"})
    assert page.status_code == 409
    assert "no longer the account manager" in page.text
    assert not AccessGrant.objects.exists()
    assert last_event(action="consent.link_refused").reason == "not_assigned"


def test_bad_durations_are_form_errors(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks
):
    ask(signed_in(oscar()), personas.account_b.pk, "Duration", django_capture_on_commit_callbacks)
    approve = links_in(smtp_server.messages[0][1])["approve"]
    owner = signed_in(personas.carol)
    for hours in ("25", "0", "48", "abc", ""):
        page = owner.post(approve, {"hours": hours})
        assert page.status_code == 200, hours
        assert "1, 4, 8 or 24 hours" in page.text
    assert not AccessGrant.objects.exists()
    # The service holds the limit as well, and the database refuses a longer grant.
    access_request = AccessRequest.objects.get()
    try:
        consent.access_request_approve(access_request=access_request, by=personas.carol, hours=48)
    except consent.ConsentError as error:
        assert error.field == "hours"
    else:
        raise AssertionError("a 48-hour grant was given")


def test_a_second_request_while_one_waits_is_refused_clearly(
    personas: Personas, smtp_server, eager, django_capture_on_commit_callbacks
):
    manager = signed_in(oscar())
    ask(manager, personas.account_b.pk, "First", django_capture_on_commit_callbacks)
    page = manager.post(request_url(personas.account_b.pk), {"reason": "Second"})
    assert page.status_code == 200
    assert "has not answered yet" in page.text
    assert AccessRequest.objects.count() == 1
    assert len(smtp_server.messages) == 1


def test_standing_access_and_main_admins_need_no_request(personas: Personas):
    for user, account in (
        (personas.mallory, personas.account_a),
        (personas.root, personas.account_b),
    ):
        client = signed_in(user)
        page = client.get(request_url(account.pk))
        assert page.status_code == 200
        assert "Send the request" not in page.text
        assert client.post(request_url(account.pk), {"reason": "x"}).status_code == 200
    assert not AccessRequest.objects.exists()


def test_a_manager_with_a_grant_cannot_give_himself_standing_access(personas: Personas):
    AccessGrant.objects.create(
        account=personas.account_b, manager=oscar(), expires_at=timezone.now() + timedelta(hours=1)
    )
    manager = signed_in(oscar())
    change = reverse("admin:accounts_account_change", args=[personas.account_b.pk])
    assert manager.get(change).status_code == 200
    manager.post(
        change,
        {
            "name": "Account B Bikes",
            "manager_access": "allowed",
            "timezone": "Europe/Copenhagen",
            "default_from_name": "",
            "default_from_email": "",
        },
    )
    personas.account_b.refresh_from_db()
    assert personas.account_b.manager_access == "ask"
    assert not events("consent.setting_changed")


def test_an_account_without_an_active_owner_cannot_be_asked(personas: Personas):
    personas.carol.is_active = False
    personas.carol.save()
    page = signed_in(oscar()).post(request_url(personas.account_b.pk), {"reason": "Hello?"})
    assert page.status_code == 200
    assert "no owner who could approve" in page.text
    assert not AccessRequest.objects.exists()
