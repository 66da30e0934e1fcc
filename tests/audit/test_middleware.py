"""The audit middleware: staff are checked against the customer's consent and logged;
customers and visitors are neither."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessGrant, ManagerAccess, Role, User
from accounts.services import account_create, user_create
from audit.models import AuditEvent
from tests.conftest import PASSWORD, Personas


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def oscar() -> User:
    """The account manager of account B, which asks first (tests/conftest.py)."""
    return User.objects.get(email="oscar@heyloyalty.test")


def _after(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def _head() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def carol_page(personas: Personas) -> str:
    return reverse("admin:accounts_user_change", args=[personas.carol.pk])


def test_a_manager_without_a_grant_gets_403_with_a_way_to_ask_and_the_refusal_is_logged(
    personas: Personas,
):
    client = signed_in(oscar())
    before = _head()
    page = client.get(carol_page(personas))
    assert page.status_code == 403
    assert "carol@b.test" not in page.text  # the view did not run
    assert "Ask the customer for access" in page.text
    assert reverse("admin:accounts_account_request_access", args=[personas.account_b.pk]) in (
        page.text
    )
    [event] = _after(before)
    assert (event.action, event.actor_email, event.account_id, event.status, event.reason) == (
        "access.refused",
        "oscar@heyloyalty.test",
        personas.account_b.pk,
        403,
        "no_grant",
    )
    assert (event.target_type, event.target_id) == ("accounts.user", str(personas.carol.pk))
    assert event.extra == {"tried": "admin.view"}


def test_with_a_grant_the_page_opens_and_the_event_names_the_grant(personas: Personas):
    grant = AccessGrant.objects.create(
        account=personas.account_b,
        manager=oscar(),
        expires_at=timezone.now() + timedelta(hours=1),
    )
    client = signed_in(oscar())
    before = _head()
    page = client.get(carol_page(personas))
    assert page.status_code == 200
    assert "carol@b.test" in page.text
    [event] = _after(before)
    assert (event.action, event.status, event.grant_id, event.extra) == (
        "admin.view",
        200,
        grant.pk,
        {"access": "grant"},
    )
    assert event.target_repr == "carol@b.test"

    grant.revoked_at = timezone.now()
    grant.save()
    before = _head()
    assert client.get(carol_page(personas)).status_code == 403
    [refused] = _after(before)
    assert (refused.action, refused.reason) == ("access.refused", "revoked")


def test_a_list_filtered_to_an_account_and_an_add_form_for_it_are_checked(personas: Personas):
    client = signed_in(oscar())
    users = reverse("admin:accounts_user_changelist")
    before = _head()
    filtered = client.get(f"{users}?account__id__exact={personas.account_b.pk}")
    assert filtered.status_code == 403
    added = client.post(
        reverse("admin:accounts_user_add"),
        {"email": "eve@b.test", "role": "user", "account": personas.account_b.pk, "generate": "on"},
    )
    assert added.status_code == 403
    assert not User.objects.filter(email="eve@b.test").exists()
    assert [(e.action, e.account_id, e.extra["tried"]) for e in _after(before)] == [
        ("access.refused", personas.account_b.pk, "admin.list"),
        ("access.refused", personas.account_b.pk, "admin.add"),
    ]


def test_a_manager_not_assigned_learns_nothing_and_the_attempt_is_logged(personas: Personas):
    """Mallory manages A, not B: the admin answers as for an id that does not exist."""
    client = signed_in(personas.mallory)
    before = _head()
    page = client.get(carol_page(personas), follow=True)
    assert "carol@b.test" not in page.text
    assert "Account B Bikes" not in page.text
    event = _after(before)[0]
    assert (event.action, event.account_id, event.reason, event.extra) == (
        "access.refused",
        personas.account_b.pk,
        "not_assigned",
        {"tried": "admin.view"},
    )


def test_a_main_admin_enters_every_account_and_is_logged(personas: Personas):
    client = signed_in(personas.root)
    before = _head()
    assert client.get(carol_page(personas)).status_code == 200
    [event] = _after(before)
    assert (event.action, event.actor_role, event.account_id, event.extra) == (
        "admin.view",
        "admin",
        personas.account_b.pk,
        {"access": "admin"},
    )


def test_a_change_is_logged_with_the_response_status(personas: Personas):
    client = signed_in(personas.mallory)
    before = _head()
    response = client.post(
        reverse("admin:accounts_user_change", args=[personas.bob.pk]),
        {
            "email": "bob@a.test",
            "name": "Bob Baker",
            "role": "user",
            "account": personas.account_a.pk,
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    [event] = _after(before)
    assert (event.action, event.method, event.status, event.target_repr) == (
        "admin.change",
        "POST",
        302,
        "bob@a.test",
    )


def test_customers_and_visitors_leave_no_staff_events(personas: Personas, client: Client):
    before = _head()
    assert client.get(reverse("accounts:login")).status_code == 200
    alice = signed_in(personas.alice)
    seq = _head()
    assert alice.get(reverse("members:lists")).status_code == 200
    assert alice.get(reverse("accounts:api_keys")).status_code == 200
    assert _after(seq) == []
    assert all(e.actor_role != "manager" for e in _after(before))


def test_staff_pages_outside_customer_accounts_are_not_logged(personas: Personas):
    client = signed_in(personas.root)
    before = _head()
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 200
    assert _after(before) == []


def test_a_new_account_and_its_manager_work_the_same(db):
    manager = user_create(
        email="nina@heyloyalty.test",
        role=Role.MANAGER,
        password=PASSWORD,
        must_change_password=False,
    )
    account = account_create(name="Nina's Nuts", manager=manager, manager_access=ManagerAccess.ASK)
    client = signed_in(manager)
    before = _head()
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert page.status_code == 403
    [event] = _after(before)
    assert (event.action, event.account_id, event.reason) == (
        "access.refused",
        account.pk,
        "no_grant",
    )


def test_the_refusal_page_speaks_danish(personas: Personas):
    page = signed_in(oscar()).get(carol_page(personas), HTTP_ACCEPT_LANGUAGE="da")
    assert page.status_code == 403
    assert "Adgang kræver kundens godkendelse" in page.text
    assert "Forsøget er logget, og kunden kan se det i sin adgangslog." in page.text
    assert "Bed kunden om adgang" in page.text


def test_pages_while_working_under_a_grant_name_the_grant(personas: Personas):
    from members.services import list_create

    shop = list_create(account=personas.account_b, name="Bikes list")
    grant = AccessGrant.objects.create(
        account=personas.account_b,
        manager=oscar(),
        expires_at=timezone.now() + timedelta(hours=2),
    )
    client = signed_in(oscar())
    start = client.post(reverse("admin:accounts_account_work_in", args=[personas.account_b.pk]))
    assert start.status_code == 302
    before = _head()
    assert client.get(reverse("members:lists")).status_code == 200
    client.get(reverse("members:list_export", args=[shop.pk]))
    page, export = _after(before)
    assert (page.action, page.account_id, page.grant_id, page.target_id) == (
        "impersonation.page",
        personas.account_b.pk,
        grant.pk,
        "members:lists",
    )
    assert (export.action, export.actor_email, export.grant_id) == (
        "export.members",
        "oscar@heyloyalty.test",
        grant.pk,
    )


def test_an_admin_action_is_checked_and_logged_for_the_account_of_every_row(personas: Personas):
    from campaigns.models import SenderDomain
    from campaigns.services import sender_domain_add

    a = sender_domain_add(account=personas.account_a, domain="bakery.example")
    b = sender_domain_add(account=personas.account_b, domain="bikes.example")
    changelist = reverse("admin:campaigns_senderdomain_changelist")

    manager, admin = signed_in(oscar()), signed_in(personas.root)
    before = _head()
    refused = manager.post(changelist, {"action": "verify", "_selected_action": [b.pk]})
    assert refused.status_code == 403
    assert not SenderDomain.objects.get(pk=b.pk).verified
    [event] = _after(before)
    assert (event.action, event.account_id, event.reason) == (
        "access.refused",
        personas.account_b.pk,
        "no_grant",
    )

    before = _head()
    done = admin.post(changelist, {"action": "verify", "_selected_action": [a.pk, b.pk]})
    assert done.status_code == 302
    assert SenderDomain.objects.filter(pk__in=[a.pk, b.pk], verified=True).count() == 2
    assert sorted((e.action, e.account_id, e.status) for e in _after(before)) == sorted(
        [
            ("admin.list_action", personas.account_a.pk, 302),
            ("admin.list_action", personas.account_b.pk, 302),
        ]
    )
