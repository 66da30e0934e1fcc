"""Carol (account B) walks every API operation and dashboard URL against Alice's objects.

Every route must be listed here: a new route that is not fails the test, so tenancy is
checked for it before it ships.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.models import AccessGrant, AccessRequest
from accounts.services import apikey_create
from campaigns.autoresponders import autoresponder_create, autoresponder_step_add
from campaigns.services import campaign_create
from heyloyalty.api import urls as api_urls
from members import services
from members.models import Import, WebhookDelivery
from members.segments import segment_create
from members.selectors import Group
from members.webhooks import webhook_create
from tests.api.conftest import Api
from tests.conftest import Personas

# API routes: regex -> path with Alice's ids (None: the route takes no id; checked below
# by what it returns instead).
API_ROUTES: dict[str, Callable[[Any], str] | None] = {
    r"^loyalty/v1/lists/?$": None,
    r"^loyalty/v1/lists/countries/?$": None,
    r"^loyalty/v1/lists/(?P<list_id>\d+)/?$": lambda o: f"/loyalty/v1/lists/{o.list.pk}",
    r"^loyalty/v1/lists/(?P<list_id>\d+)/members/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/members"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/members/upsert/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/members/upsert"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/members/bulk/(?P<action>copy|move)/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/members/bulk/move"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/members/(?P<member_id>[^/]+)/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/members/{o.member.pk}"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/import/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/import"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/statistics/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/statistics"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/imports/(?P<import_id>\d+)/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/imports/{o.job.pk}"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/imports/(?P<import_id>\d+)/report/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/imports/{o.job.pk}/report"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/segments/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/segments"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/segments/(?P<segment_id>\d+)/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/segments/{o.segment.pk}"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/webhooks/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/webhooks"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/webhooks/(?P<webhook_id>\d+)/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/webhooks/{o.webhook.pk}"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/webhooks/(?P<webhook_id>\d+)/deliveries/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/webhooks/{o.webhook.pk}/deliveries"
    ),
    r"^loyalty/v1/lists/(?P<list_id>\d+)/webhooks/(?P<webhook_id>\d+)/deliveries/"
    r"(?P<delivery_id>\d+)/replay/?$": lambda o: (
        f"/loyalty/v1/lists/{o.list.pk}/webhooks/{o.webhook.pk}/deliveries/{o.delivery.pk}/replay"
    ),
    r"^loyalty/v2/lists/members/byfield/?$": None,
    r"^loyalty/v2/lists/(?P<list_id>\d+)/?$": lambda o: f"/loyalty/v2/lists/{o.list.pk}",
    r"^loyalty/v1/campaigns/?$": None,
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/send/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/send"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/pause/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/pause"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/resume/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/resume"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/cancel/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/cancel"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/deliveries/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/deliveries"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/test/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/test"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/statistics/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/statistics"
    ),
    r"^loyalty/v1/campaigns/(?P<campaign_id>\d+)/preview/?$": lambda o: (
        f"/loyalty/v1/campaigns/{o.campaign.pk}/preview"
    ),
    r"^(loyalty|reseller|tools)(/.*)?$": None,
}

# Dashboard URL names -> whether they show account data ("scoped") or not ("public").
DASHBOARD_ROUTES = {
    "accounts:home": "scoped",
    "accounts:login": "public",
    "accounts:logout": "public",
    "accounts:password_change": "public",
    "healthz": "public",
    # Monitoring: dependencies' state and incidents, the same for everyone (no account data).
    "readyz": "public",
    "monitoring:status": "public",
    # Two-factor sign-in: the signed-in user's own setting and the steps of signing in.
    "two_factor:verify": "public",
    "two_factor:setup": "public",
    "two_factor:settings": "public",
    "set_language": "public",
    "javascript-catalog": "public",
    "api-schema": "public",
    "api-docs": "public",
    "admin-password-change": "public",
    "optin_confirm": "public",
    # The recipient's pages: a signed token names one member, no account is chosen.
    "unsubscribe": "public",
    "unsubscribe_preferences": "public",
    # The open pixel and tracked links: a signed token names one delivery.
    "tracking_open": "public",
    "tracking_click": "public",
    "accounts:api_keys": "scoped",
    "accounts:api_key_revoke": "object",
    "accounts:access": "scoped",
    "accounts:access_export": "scoped",
    "accounts:access_request_decide": "object",
    "accounts:access_grant_revoke": "object",
    # A signed token names one access request; only an owner of its account may act on
    # it (tests/accounts/test_consent_links.py).
    "accounts:access_link": "public",
    # Staff only: ends their own session on a customer's behalf.
    "accounts:acting_end": "public",
    "members:lists": "scoped",
    "members:list_create": "scoped",
    "members:list_detail": "object",
    "members:list_fields": "object",
    "members:list_growth": "object",
    "members:list_export": "object",
    "members:import_start": "object",
    "members:import_detail": "object",
    "members:import_status": "object",
    "members:import_commit": "object",
    "members:import_report": "object",
    "members:member_detail": "object",
    "members:member_remove": "object",
    "members:member_export": "object",
    "members:segments": "object",
    "members:segment_new": "object",
    "members:segment_count": "object",
    "members:segment_edit": "object",
    "members:segment_delete": "object",
    "members:segment_export": "object",
    "members:webhooks": "object",
    "members:webhook_detail": "object",
    "members:webhook_enable": "object",
    "members:webhook_replay": "object",
    "campaigns:list": "scoped",
    "campaigns:create": "scoped",
    "campaigns:preview": "scoped",
    "campaigns:detail": "object",
    "campaigns:edit": "object",
    "campaigns:test": "object",
    "campaigns:send": "object",
    "campaigns:status": "object",
    "campaigns:pause": "object",
    "campaigns:resume": "object",
    "campaigns:cancel": "object",
    "campaigns:unschedule": "object",
    "campaigns:resend": "object",
    "campaigns:duplicate": "object",
    "campaigns:delete": "object",
    "campaigns:autoresponders": "scoped",
    "campaigns:autoresponder_create": "scoped",
    "campaigns:autoresponder_detail": "object",
    "campaigns:autoresponder_edit": "object",
    "campaigns:autoresponder_activate": "object",
    "campaigns:autoresponder_deactivate": "object",
    "campaigns:autoresponder_delete": "object",
    "campaigns:autoresponder_step_create": "object",
    "campaigns:autoresponder_step_edit": "object",
    "campaigns:autoresponder_step_test": "object",
    "campaigns:autoresponder_step_delete": "object",
}


class AliceObjects:
    def __init__(self, personas: Personas) -> None:
        self.list = services.list_create(account=personas.account_a, name="Alice secret list")
        self.member = services.member_create(
            member_list=self.list, values={"email": "alice.customer@example.dk"}
        )
        self.job = Import.objects.create(list=self.list, file="/nonexistent.csv")
        self.segment = segment_create(
            member_list=self.list,
            name="Alice secret segment",
            rules=Group.from_flat({"email": {"ct": ["example"]}}, "and"),
        )
        self.webhook, _ = webhook_create(
            member_list=self.list, url="https://alice.example.com/hook", events=["subscribe"]
        )
        self.delivery = WebhookDelivery.objects.create(
            webhook=self.webhook, event="subscribe", payload={"secret": "Alice's member"}
        )
        self.campaign = campaign_create(
            account=personas.account_a, name="Alice secret campaign", list_ids=[self.list.pk]
        )
        self.autoresponder = autoresponder_create(
            account=personas.account_a, member_list=self.list, name="Alice secret autoresponder"
        )
        self.step = autoresponder_step_add(autoresponder=self.autoresponder, subject="Hej")
        # A request waiting for Alice's answer, and a grant she gave.
        self.access_request = AccessRequest.objects.create(
            account=personas.account_a, manager=personas.mallory, reason="Alice secret reason"
        )
        self.grant = AccessGrant.objects.create(
            account=personas.account_a,
            manager=personas.mallory,
            expires_at=timezone.now() + timedelta(hours=1),
        )


def _names(resolver: URLResolver, prefix: str = "") -> set[str]:
    names = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # the admin panel has its own scoping tests (tests/accounts)
            if pattern.app_name == "anymail":
                continue  # ESP webhooks: basic auth, no account (tests/campaigns/test_bounces)
            ns = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names |= _names(pattern, ns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(prefix + pattern.name)
    return names


def test_every_api_route_is_listed_here():
    regexes = {p.pattern.regex.pattern for p in api_urls.urlpatterns}
    assert regexes == set(API_ROUTES), "add the new API route to API_ROUTES"


def test_every_dashboard_url_is_listed_here():
    assert _names(get_resolver()) == set(DASHBOARD_ROUTES), "add the new URL to DASHBOARD_ROUTES"


def test_carol_gets_404_from_every_api_operation_on_alices_objects(personas: Personas):
    alice = AliceObjects(personas)
    api_key, secret = apikey_create(account=personas.account_b, name="carol")
    carol = Api(api_key.key, secret)
    for pattern in api_urls.urlpatterns:
        make_path = API_ROUTES[pattern.pattern.regex.pattern]
        view = getattr(pattern.callback, "view_class", None)
        if make_path is None or view is None:
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            if not hasattr(view, method) or method not in view.http_method_names:
                continue
            response = carol.json(
                method.upper(),
                make_path(alice),
                {"name": "x", "email": "x@y.dk", "unique_field": "email"},
            )
            assert response.status_code == 404, (method, make_path(alice), response.content)
    # Routes without ids show Carol nothing of Alice's.
    assert all(lst["id"] != alice.list.pk for lst in carol.get("lists").json())
    gone = carol.json(
        "DELETE",
        "/loyalty/v2/lists/members/byfield",
        {"field": "email", "value": "alice.customer@example.dk", "lists": [alice.list.pk]},
    )
    assert gone.json() == {"deleted": 0}
    alice.member.refresh_from_db()
    alice.list.refresh_from_db()
    assert alice.list.name == "Alice secret list"
    alice.segment.refresh_from_db()
    assert alice.segment.name == "Alice secret segment"
    alice.webhook.refresh_from_db()
    assert alice.webhook.url == "https://alice.example.com/hook"
    assert list(alice.webhook.deliveries.all()) == [alice.delivery]  # nothing replayed
    alice.campaign.refresh_from_db()
    assert (alice.campaign.name, alice.campaign.status) == ("Alice secret campaign", "draft")
    assert all(c["id"] != alice.campaign.pk for c in carol.get("campaigns").json()["campaigns"])


def test_alice_cannot_copy_or_move_members_to_carols_list(personas: Personas):
    alice = AliceObjects(personas)
    carols_list = services.list_create(account=personas.account_b, name="Carol's list")
    api_key, secret = apikey_create(account=personas.account_a, name="alice")
    api = Api(api_key.key, secret)
    for action in ("copy", "move"):
        response = api.json(
            "POST",
            f"lists/{alice.list.pk}/members/bulk/{action}",
            {"listId": carols_list.pk, "members": [str(alice.member.pk)]},
        )
        assert response.status_code == 404, (action, response.content)
        assert response.json()["code"] == 404
    assert not carols_list.members.exists()
    assert alice.list.members.filter(pk=alice.member.pk).exists()


@pytest.mark.parametrize("name", [n for n, kind in DASHBOARD_ROUTES.items() if kind == "scoped"])
def test_carols_dashboard_shows_nothing_of_alice(client, personas: Personas, name: str):
    from django.urls import reverse

    AliceObjects(personas)
    client.force_login(personas.carol)
    page = client.get(reverse(name))
    assert page.status_code == 200
    text = b"".join(page.streaming_content).decode() if page.streaming else page.text
    assert "Alice secret list" not in text
    assert "Account A Bakery" not in text
    assert "Alice secret campaign" not in text
    assert "Alice secret autoresponder" not in text
    assert "Alice secret reason" not in text


def _object_kwargs(name: str, alice: AliceObjects, key_id: int) -> dict[str, Any]:
    if name == "accounts:api_key_revoke":
        return {"key_id": key_id}
    if name == "accounts:access_request_decide":
        return {"request_id": alice.access_request.pk}
    if name == "accounts:access_grant_revoke":
        return {"grant_id": alice.grant.pk}
    if name.startswith("campaigns:autoresponder"):
        ids = {"autoresponder_id": alice.autoresponder.pk}
        if name.startswith("campaigns:autoresponder_step_") and not name.endswith("_create"):
            ids["step_id"] = alice.step.pk
        return ids
    if name.startswith("campaigns:"):
        return {"campaign_id": alice.campaign.pk}
    kwargs: dict[str, Any] = {"list_id": alice.list.pk}
    if name.startswith("members:import_") and name != "members:import_start":
        kwargs["import_id"] = alice.job.pk
    if name.startswith("members:member_"):
        kwargs["member_id"] = alice.member.pk
    if name in ("members:segment_edit", "members:segment_delete", "members:segment_export"):
        kwargs["segment_id"] = alice.segment.pk
    if name.startswith("members:webhook_"):
        kwargs["webhook_id"] = alice.webhook.pk
    if name == "members:webhook_replay":
        kwargs["delivery_id"] = alice.delivery.pk
    return kwargs


def test_carol_gets_404_from_every_dashboard_page_of_alices_objects(client, personas: Personas):
    from django.urls import reverse

    alice = AliceObjects(personas)
    alice_key, _ = apikey_create(account=personas.account_a, name="alice")
    client.force_login(personas.carol)
    for name, kind in DASHBOARD_ROUTES.items():
        if kind != "object":
            continue
        url = reverse(name, kwargs=_object_kwargs(name, alice, alice_key.pk))
        assert client.get(url).status_code in (404, 405), url
        assert client.post(url).status_code == 404, url
    alice.member.refresh_from_db()
    alice_key.refresh_from_db()
    assert alice_key.revoked_at is None
    alice.campaign.refresh_from_db()  # neither deleted, copied, nor sent
    assert alice.campaign.status == "draft"
    assert alice.campaign.account.campaigns.filter(kind="campaign").count() == 1
    alice.grant.refresh_from_db()  # neither revoked nor answered, consent unchanged
    alice.access_request.refresh_from_db()
    assert (alice.grant.revoked_at, alice.access_request.status) == (None, "pending")
    personas.account_a.refresh_from_db()
    assert personas.account_a.manager_access == "allowed"
    alice.autoresponder.refresh_from_db()  # neither switched on, deleted, nor added to
    assert (alice.autoresponder.active, alice.autoresponder.steps.count()) == (False, 1)
    assert list(alice.webhook.deliveries.all()) == [alice.delivery]  # nothing replayed
