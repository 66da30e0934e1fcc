"""Acceptance 1: every admin page of a customer-owned model, every dashboard page and
every API route, visited by Mallory (the manager of account A, standing access) and by
Root (a main admin), leaves exactly one audit event per visit.

The routes are enumerated, not listed by hand: a new admin page, dashboard route or API
route is visited here the day it is added, and fails this test unless the middleware
logs it. ADMIN_PAGES names the admin pages in scope, so that adding or losing one is
also a conscious change; dashboard routes must be classified in tests/test_tenancy.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.db import models
from django.test import Client
from django.urls import URLPattern, reverse

from accounts.models import Account, User
from accounts.services import apikey_create
from audit.models import AuditEvent
from audit.scope import account_path
from campaigns.models import SenderDomain
from campaigns.services import sender_domain_add
from heyloyalty.api import urls as api_urls
from tests.conftest import Personas
from tests.test_tenancy import API_ROUTES, DASHBOARD_ROUTES, AliceObjects, _names, _object_kwargs

# Admin URL names of the ModelAdmins of customer-owned models (a path to an Account).
ADMIN_PAGES = {
    "accounts_account_changelist",
    "accounts_account_add",
    "accounts_account_change",
    "accounts_account_delete",
    "accounts_account_history",
    "accounts_account_request_access",
    "accounts_account_work_in",
    "accounts_user_changelist",
    "accounts_user_add",
    "accounts_user_change",
    "accounts_user_delete",
    "accounts_user_history",
    "accounts_user_password",
    "campaigns_senderdomain_changelist",
    "campaigns_senderdomain_add",
    "campaigns_senderdomain_change",
    "campaigns_senderdomain_delete",
    "campaigns_senderdomain_history",
}

# API routes that take no id: a path that reaches them.
API_PLAIN_PATHS = {
    r"^loyalty/v1/lists/?$": "/loyalty/v1/lists",
    r"^loyalty/v1/lists/countries/?$": "/loyalty/v1/lists/countries",
    r"^loyalty/v2/lists/members/byfield/?$": "/loyalty/v2/lists/members/byfield",
    r"^loyalty/v1/campaigns/?$": "/loyalty/v1/campaigns",
    r"^(loyalty|reseller|tools)(/.*)?$": "/loyalty/v1/no-such-route",
}


class Walk:
    """Visits as one member of staff; each visit must leave exactly one event."""

    def __init__(self, user: User, account: Account) -> None:
        self.user, self.account = user, account
        self.client = Client()
        self.client.force_login(user)
        self.visits: list[tuple[str, AuditEvent]] = []

    def visit(self, name: str, url: str, *, about_account: bool, **extra: Any) -> AuditEvent:
        before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        response = self.client.get(url, **extra)
        events = list(AuditEvent.objects.filter(seq__gt=before).order_by("seq"))
        assert len(events) == 1, (self.user.email, name, url, [e.action for e in events])
        event = events[0]
        assert event.actor_id == self.user.pk, (name, event.actor_email)
        assert event.actor_role == self.user.role
        assert event.path == url
        assert event.status in (response.status_code, None), (name, event.status)
        if about_account:
            assert event.account_id == self.account.pk, (name, url, event.action)
        self.visits.append((name, event))
        return event


def _objects(personas: Personas, alice: AliceObjects) -> dict[type[models.Model], Any]:
    """One object of account A for every ModelAdmin in scope."""
    objects: dict[type[models.Model], Any] = {
        Account: personas.account_a,
        User: personas.alice,
    }
    objects[SenderDomain] = sender_domain_add(account=personas.account_a, domain="bakery.example")
    return objects


def _admin_urls(objects: dict[type[models.Model], Any]) -> list[tuple[str, str]]:
    urls = []
    for model, model_admin in admin.site._registry.items():
        path = account_path(model)
        if path is None:
            continue
        obj = objects.get(model)
        if obj is None:
            obj = model._default_manager.filter(**{path: objects[Account].pk}).first()
        assert obj is not None, f"make an object of {model.__name__} in _objects for the walk"
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            kwargs = dict.fromkeys(pattern.pattern.regex.groupindex, obj.pk)
            if "for_account" in kwargs:
                kwargs["for_account"] = objects[Account].pk
            urls.append((pattern.name, reverse(f"admin:{pattern.name}", kwargs=kwargs)))
    return urls


@pytest.fixture
def world(personas: Personas) -> dict[str, Any]:
    alice = AliceObjects(personas)
    key, _ = apikey_create(account=personas.account_a, name="Shop")
    return {"alice": alice, "key": key, "objects": _objects(personas, alice)}


def test_the_admin_pages_in_scope_are_the_known_ones(world: dict[str, Any]):
    names = {name for name, _ in _admin_urls(world["objects"])}
    assert names == ADMIN_PAGES, "a new admin page of a customer-owned model: add it here"


@pytest.mark.parametrize("who", ["mallory", "root"])
def test_every_admin_page_of_a_customer_owned_model_is_logged_once(
    personas: Personas, world: dict[str, Any], who: str
):
    walk = Walk(getattr(personas, who), personas.account_a)
    for name, url in _admin_urls(world["objects"]):
        is_list = name.endswith(("_changelist", "_add"))
        event = walk.visit(name, url, about_account=not is_list)
        assert event.action.startswith("admin."), (name, event.action)
    # Lists filtered to the account, and an add form for it, are about the account too.
    for model in (User, SenderDomain):
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        filtered = f"{changelist}?account__id__exact={personas.account_a.pk}"
        walk.visit("filtered list", filtered, about_account=True)
    assert len(walk.visits) == len(ADMIN_PAGES) + 2


def _acting(walk: Walk) -> None:
    """Start working in account A on the customer's behalf, as staff do: the Account
    admin's "Work in this account" (it logs "impersonation.start")."""
    start = walk.client.post(reverse("admin:accounts_account_work_in", args=[walk.account.pk]))
    assert start.status_code == 302, start.content
    assert AuditEvent.objects.filter(
        actor_id=walk.user.pk, action="impersonation.start", account_id=walk.account.pk
    ).exists()


@pytest.mark.parametrize("who", ["mallory", "root"])
def test_every_dashboard_page_while_acting_for_the_customer_is_logged_once(
    personas: Personas, world: dict[str, Any], who: str
):
    walk = Walk(getattr(personas, who), personas.account_a)
    _acting(walk)
    unknown = _names_of_dashboard() - set(DASHBOARD_ROUTES)
    assert not unknown, f"classify these routes in tests/test_tenancy.py: {unknown}"
    pages = 0
    for name, kind in DASHBOARD_ROUTES.items():
        if kind == "public":
            continue  # recipients' pages, sign-in, health: no account's data
        kwargs = _object_kwargs(name, world["alice"], world["key"].pk) if kind == "object" else {}
        event = walk.visit(name, reverse(name, kwargs=kwargs), about_account=True)
        assert event.action in ("impersonation.page", "export.members"), (name, event.action)
        assert event.grant_id is None  # standing access (Mallory) or a main admin (Root)
        pages += 1
    assert pages == sum(1 for kind in DASHBOARD_ROUTES.values() if kind != "public")
    assert pages > 50


def _names_of_dashboard() -> set[str]:
    from django.urls import get_resolver

    return _names(get_resolver())


@pytest.mark.parametrize("who", ["mallory", "root"])
def test_every_api_route_tried_by_staff_is_logged_once(
    personas: Personas, world: dict[str, Any], who: str
):
    """The API authenticates API keys, not staff sessions: staff reach no account's data
    through it, and each attempt is logged."""
    walk = Walk(getattr(personas, who), personas.account_a)
    for pattern in api_urls.urlpatterns:
        regex = pattern.pattern.regex.pattern
        make_path = API_ROUTES[regex]
        url = make_path(world["alice"]) if make_path is not None else API_PLAIN_PATHS[regex]
        event = walk.visit(regex, url, about_account=False)
        assert event.action == "api.request"
        assert event.status in (401, 403, 404), (url, event.status)
    assert len(walk.visits) == len(api_urls.urlpatterns)
