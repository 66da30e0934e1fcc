"""The customer's page "Access to your account": the staff access log (acceptance 4:
Alice sees every access to account A and none to account B; Carol sees none of A's),
pending requests, grants, the consent setting and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessGrant, AccessRequest, AccessRequestStatus, ManagerAccess, User
from audit.models import AuditEvent
from audit.services import record
from tests.accounts.test_consent_support import events, oscar, signed_in
from tests.conftest import Personas

PAGE = reverse("accounts:access")
EXPORT = reverse("accounts:access_export")


def csv_of(client, query: str = "") -> list[dict[str, str]]:
    response = client.get(EXPORT + query)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode().lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


def status(client, name: str, *args) -> int:
    return client.get(reverse(name, args=args)).status_code


def staff_visits(personas: Personas) -> None:
    """Real staff access through the admin panel and the dashboard: Mallory and Root in
    account A, Root and Oscar in account B, refused attempts, pages on A's behalf."""
    mallory, root, manager_b = (
        signed_in(personas.mallory),
        signed_in(personas.root),
        signed_in(oscar()),
    )
    a, bob, carol = personas.account_a.pk, personas.bob.pk, personas.carol.pk
    for client in (mallory, root):
        assert status(client, "admin:accounts_account_change", a) == 200
        assert status(client, "admin:accounts_user_change", bob) == 200
    assert status(root, "admin:accounts_user_change", carol) == 200
    assert status(manager_b, "admin:accounts_user_change", carol) == 403  # no grant
    # Not her account: the admin finds nothing, and the attempt is logged for B.
    assert status(mallory, "admin:accounts_user_change", carol) in (302, 404)
    assert mallory.post(reverse("admin:accounts_account_work_in", args=[a])).status_code == 302
    assert status(mallory, "members:lists") == 200


def test_alice_sees_every_access_to_account_a_and_none_to_b(personas: Personas):
    staff_visits(personas)
    staff = ("manager", "admin")
    a_events = set(
        AuditEvent.objects.filter(
            account_id=personas.account_a.pk, actor_role__in=staff
        ).values_list("seq", flat=True)
    )
    b_events = set(
        AuditEvent.objects.filter(
            account_id=personas.account_b.pk, actor_role__in=staff
        ).values_list("seq", flat=True)
    )
    assert len(a_events) == 6  # two pages each by Mallory and Root; start; one page as A
    assert b_events  # Root's view and Oscar's refusal

    alice = signed_in(personas.alice)
    rows = csv_of(alice)
    assert {int(r["seq"]) for r in rows} == a_events
    assert {r["staff_email"] for r in rows} == {"mallory@heyloyalty.test", "root@heyloyalty.test"}
    assert {"impersonation.start", "impersonation.page", "admin.view"} <= {
        r["action"] for r in rows
    }
    page = alice.get(PAGE)
    assert page.status_code == 200
    assert f"{len(a_events)} events" in page.text
    assert "root@heyloyalty.test" in page.text
    assert "mallory@heyloyalty.test" in page.text
    assert "oscar@heyloyalty.test" not in page.text
    assert f"/admin/accounts/user/{personas.carol.pk}/" not in page.text

    carol = signed_in(personas.carol)
    carol_rows = csv_of(carol)
    assert {int(r["seq"]) for r in carol_rows} == b_events
    assert not {int(r["seq"]) for r in carol_rows} & a_events
    # Of Mallory, Carol sees only the attempt on her account, refused.
    assert {r["action"] for r in carol_rows if r["staff_email"] == "mallory@heyloyalty.test"} == {
        "access.refused"
    }
    carol_page = carol.get(PAGE).text
    assert f"/admin/accounts/user/{personas.bob.pk}/" not in carol_page
    assert "Was refused access" in carol_page  # Oscar's and Mallory's attempts
    assert "not their account manager" in carol_page


def test_the_log_says_under_which_grant(personas: Personas):
    grant = AccessGrant.objects.create(
        account=personas.account_b, manager=oscar(), expires_at=timezone.now() + timedelta(hours=8)
    )
    assert (
        signed_in(oscar())
        .get(reverse("admin:accounts_user_change", args=[personas.carol.pk]))
        .status_code
        == 200
    )
    carol = signed_in(personas.carol)
    assert f"Your approval #{grant.pk}" in carol.get(PAGE).text
    (row,) = [r for r in csv_of(carol) if r["action"] == "admin.view"]
    assert row["grant_id"] == str(grant.pk)
    assert row["grant_expires_at"] == grant.expires_at.isoformat()


def test_the_log_is_paged_and_filtered(personas: Personas):
    for n in range(55):
        record(
            "admin.view", actor=personas.root, account=personas.account_a, target_repr=f"thing {n}"
        )
    record("consent.requested", actor=personas.mallory, account=personas.account_a, reason="why")
    alice = signed_in(personas.alice)
    first = alice.get(PAGE)
    assert "56 events" in first.text
    assert "Page 1 of 2" in first.text
    assert "thing 54" in first.text and "thing 0<" not in first.text
    assert "thing 0" in alice.get(PAGE + "?page=2").text
    consent_only = alice.get(PAGE + "?kind=consent").text
    assert "1 event" in consent_only and "thing 3" not in consent_only
    assert len(csv_of(alice, "?kind=consent")) == 1
    assert alice.get(PAGE + "?kind=nonsense&page=zzz").status_code == 200


def test_the_empty_page_says_so(personas: Personas):
    page = signed_in(personas.alice).get(PAGE)
    assert "No access by our staff" in page.text
    assert "No access given" in page.text


def test_only_owners_see_the_page(personas: Personas):
    for url in (PAGE, EXPORT):
        assert signed_in(personas.bob).get(url).status_code == 403
        assert signed_in(personas.mallory).get(url).status_code == 302  # to the admin panel
    nav = signed_in(personas.alice).get(reverse("accounts:home")).text
    assert f'href="{PAGE}"' in nav
    assert f'href="{PAGE}"' not in signed_in(personas.bob).get(reverse("accounts:home")).text


def test_the_owner_changes_the_consent_setting(personas: Personas):
    alice = signed_in(personas.alice)
    page = alice.post(PAGE, {"manager_access": "ask"}, follow=True)
    assert "must now ask you first" in page.text
    personas.account_a.refresh_from_db()
    assert personas.account_a.manager_access == ManagerAccess.ASK
    event = events("consent.setting_changed")[-1]
    assert (event.actor_email, event.extra["to"]) == ("alice@a.test", "ask")
    # Mallory's standing access is gone at once.
    mallory = signed_in(personas.mallory)
    assert (
        mallory.get(reverse("admin:accounts_user_change", args=[personas.bob.pk])).status_code
        == 403
    )
    # Bad values change nothing and say why.
    for bad in ({"manager_access": "always"}, {}):
        page = alice.post(PAGE, bad, follow=True)
        assert "must ask first" in page.text
    personas.account_a.refresh_from_db()
    assert personas.account_a.manager_access == ManagerAccess.ASK
    assert len(events("consent.setting_changed")) == 1
    # Plain users cannot change it.
    assert signed_in(personas.bob).post(PAGE, {"manager_access": "allowed"}).status_code == 403


def _pending(personas: Personas, reason: str = "Look at the bounces") -> AccessRequest:
    return AccessRequest.objects.create(
        account=personas.account_b, manager=oscar(), reason=reason, nonce="x" * 20
    )


def test_the_owner_approves_a_pending_request_on_the_page(personas: Personas):
    access_request = _pending(personas)
    carol = signed_in(personas.carol)
    page = carol.get(PAGE)
    assert "1 request waiting for your answer" in page.text
    assert "Look at the bounces" in page.text
    decide = reverse("accounts:access_request_decide", args=[access_request.pk])
    assert f'action="{decide}"' in page.text
    done = carol.post(decide, {"decision": "approve", "hours": "8"}, follow=True)
    assert "has access until" in done.text
    grant = AccessGrant.objects.get()
    assert grant.expires_at - grant.created_at == timedelta(hours=8)
    access_request.refresh_from_db()
    assert (access_request.status, access_request.nonce) == (AccessRequestStatus.APPROVED, "")
    assert "Revoke" in done.text and "Oscar Othermanager" in done.text
    # Answering twice is refused clearly.
    again = carol.post(decide, {"decision": "deny"}, follow=True)
    assert "already been answered" in again.text


def test_the_owner_denies_on_the_page_and_bad_decisions_are_errors(personas: Personas):
    access_request = _pending(personas)
    carol = signed_in(personas.carol)
    decide = reverse("accounts:access_request_decide", args=[access_request.pk])
    for bad in (
        {},
        {"decision": "maybe"},
        {"decision": "approve"},
        {"decision": "approve", "hours": "30"},
    ):
        page = carol.post(decide, bad, follow=True)
        assert page.status_code == 200
        assert "Choose" in page.text, bad
    access_request.refresh_from_db()
    assert access_request.status == AccessRequestStatus.PENDING
    assert "You denied" in carol.post(decide, {"decision": "deny"}, follow=True).text
    access_request.refresh_from_db()
    assert access_request.status == AccessRequestStatus.DENIED
    assert not AccessGrant.objects.exists()


def test_another_accounts_requests_and_grants_are_404(personas: Personas):
    access_request = _pending(personas)
    grant = AccessGrant.objects.create(
        account=personas.account_b, manager=oscar(), expires_at=timezone.now() + timedelta(hours=1)
    )
    alice = signed_in(personas.alice)
    assert (
        alice.post(
            reverse("accounts:access_request_decide", args=[access_request.pk]),
            {"decision": "approve", "hours": "24"},
        ).status_code
        == 404
    )
    assert alice.post(reverse("accounts:access_grant_revoke", args=[grant.pk])).status_code == 404
    grant.refresh_from_db()
    access_request.refresh_from_db()
    assert (grant.revoked_at, access_request.status) == (None, AccessRequestStatus.PENDING)
    assert "Look at the bounces" not in alice.get(PAGE).text


def test_the_csv_cannot_carry_a_formula(personas: Personas):
    record(
        "admin.view", actor=personas.root, account=personas.account_a, target_repr="=HYPERLINK(1)"
    )
    (row,) = csv_of(signed_in(personas.alice))
    assert row["target"] == "'=HYPERLINK(1)"


def test_staff_acting_for_the_customer_cannot_open_the_page(personas: Personas):
    mallory = signed_in(personas.mallory)
    mallory.post(reverse("admin:accounts_account_work_in", args=[personas.account_a.pk]))
    assert mallory.get(reverse("accounts:home")).status_code == 200
    assert mallory.get(PAGE).status_code == 403
    assert mallory.post(PAGE, {"manager_access": "allowed"}).status_code == 403
    assert User.objects.filter(pk=personas.mallory.pk).exists()


def test_the_page_and_the_banner_speak_danish(personas: Personas, settings):
    alice = signed_in(personas.alice)
    alice.cookies[settings.LANGUAGE_COOKIE_NAME] = "da"
    page = alice.get(PAGE).text
    assert "Adgang til din konto" in page
    assert "Ingen adgang fra vores medarbejdere" in page
    mallory = signed_in(personas.mallory)
    mallory.cookies[settings.LANGUAGE_COOKIE_NAME] = "da"
    mallory.post(reverse("admin:accounts_account_work_in", args=[personas.account_a.pk]))
    assert "på kundens vegne" in mallory.get(reverse("accounts:home")).text
