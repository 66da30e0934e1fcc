"""Which changes become webhook events, with what payload, and what they cost: imports in
one batch from a task, API writes, unsubscribes, bounces and complaints on every list of
the address, the sending pipeline's 'sent' per batch, and opens and clicks."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import sending
from campaigns.bounces import bounce_record
from campaigns.models import BounceKind, Campaign, CampaignTarget, Link, SenderDomain
from campaigns.pipeline import campaign_prepare, campaign_start
from campaigns.transport import DjangoTransport
from campaigns.unsubscribe import member_unsubscribe
from members import tasks
from members.imports import ImportOptions, import_create, import_run
from members.models import List, Member, WebhookDelivery
from members.services import list_create, member_create, member_update
from members.webhook_delivery import (
    webhook_lists,
    webhooks_emit_import,
    webhooks_emit_tracking,
)
from members.webhooks import webhook_update
from tests.api.conftest import Api
from tests.conftest import Personas
from tests.members.test_webhook_delivery_support import (
    alice_api,
    make_hook,
    queued,
    shop,
)

__all__ = ["alice_api", "queued", "shop"]  # fixtures

URL = "https://hooks.shop.example/hook"


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def sends(monkeypatch) -> list[int]:
    """Send tasks are recorded, not run: these tests are about what is written."""
    queued_sends: list[int] = []
    monkeypatch.setattr(tasks.webhook_send, "delay", queued_sends.append)
    return queued_sends


def payloads(event: str | None = None) -> list[dict[str, Any]]:
    rows = WebhookDelivery.objects.order_by("id")
    if event:
        rows = rows.filter(event=event)
    return [row.payload for row in rows]


def writes_to_webhooks(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "members_webhook" in q["sql"]]


# -- imports ----------------------------------------------------------------------------


def test_a_1000_member_import_emits_one_batch(
    shop, queued, sends, django_capture_on_commit_callbacks
):
    hook = make_hook(shop, URL, "subscribe")
    make_hook(shop, "https://other.shop.example/hook", "update")  # not for subscribes
    rows = "".join(f"m{i}@example.dk,Name {i},{i}\n" for i in range(1000))
    job = import_create(
        member_list=shop,
        upload=io.BytesIO(f"email,firstname,points\n{rows}".encode()),
        options=ImportOptions(),
    )
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        import_run(import_id=job.pk)

    job.refresh_from_db()
    assert job.created == 1000
    assert [name for name, _ in queued] == ["webhooks_import_emit"]  # one task for the import
    inserts = [q for q in writes_to_webhooks(queries) if q.startswith("INSERT")]
    assert len(inserts) == 1  # the thousand events in one statement
    assert sends == [hook.webhook.pk]  # and one send for the batch, not one per member
    found = WebhookDelivery.objects.filter(webhook=hook.webhook)
    assert found.count() == 1000
    assert set(found.values_list("origin", flat=True)) == {f"import:{job.pk}"}
    one = found.get(payload__member__fields__email="m7@example.dk").payload
    assert one["type"] == "subscribe" and one["member"]["fields"]["points"] == 7
    assert one["member"]["fields"]["firstname"] == "Name 7"

    # The task delivered twice writes nothing twice.
    (_, (import_id, created_at)) = queued[0]
    assert webhooks_emit_import(import_id=import_id, created_at=created_at) == 1000
    assert found.count() == 1000


def test_an_import_queues_nothing_for_a_list_without_a_subscribe_webhook(
    shop, queued, sends, django_capture_on_commit_callbacks
):
    make_hook(shop, URL, "update", "unsubscribe")
    job = import_create(
        member_list=shop,
        upload=io.BytesIO(b"email\na@example.dk\nb@example.dk\n"),
        options=ImportOptions(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        import_run(import_id=job.pk)
    assert queued == [] and sends == []
    assert not WebhookDelivery.objects.exists()


def test_a_preview_import_emits_nothing(shop, queued, django_capture_on_commit_callbacks):
    make_hook(shop, URL, "subscribe")
    job = import_create(
        member_list=shop,
        upload=io.BytesIO(b"email\na@example.dk\n"),
        options=ImportOptions(),
        preview=True,
    )
    with django_capture_on_commit_callbacks(execute=True):
        import_run(import_id=job.pk)
    assert queued == []
    assert not WebhookDelivery.objects.exists()


# -- API writes -------------------------------------------------------------------------


def test_create_update_upsert_and_delete_through_the_api(alice_api: Api, shop, sends):
    make_hook(shop, URL, "subscribe", "update", "unsubscribe")
    members = f"lists/{shop.pk}/members"
    member_id = alice_api.json("POST", members, {"email": "ann@example.dk"}).json()["id"]
    alice_api.json("PATCH", f"{members}/{member_id}", {"firstname": "Ann"})
    alice_api.json(
        "POST",
        f"{members}/upsert",
        {"unique_field": "email", "email": "ann@example.dk", "points": 5},
    )
    alice_api.json("POST", f"{members}/upsert", {"unique_field": "email", "email": "bo@example.dk"})
    alice_api.call("DELETE", f"{members}/{member_id}")

    events = [(p["type"], p["member"]["fields"]["email"]) for p in payloads()]
    assert events == [
        ("subscribe", "ann@example.dk"),
        ("update", "ann@example.dk"),
        ("update", "ann@example.dk"),
        ("subscribe", "bo@example.dk"),
        ("unsubscribe", "ann@example.dk"),
    ]
    last = payloads("unsubscribe")[0]
    assert last["member_id"] == member_id  # the member as it was before it was deleted
    assert (last["member"]["fields"]["firstname"], last["member"]["fields"]["points"]) == (
        "Ann",
        5,
    )


def test_a_list_without_webhooks_pays_no_query_for_them(alice_api: Api, shop):
    make_hook(list_create(account=shop.account, name="Other"), URL, "subscribe")
    members = f"lists/{shop.pk}/members"
    alice_api.json("POST", members, {"email": "warm@example.dk"})  # fills the lookup
    with CaptureQueriesContext(connection) as queries:
        created = alice_api.json("POST", members, {"email": "ann@example.dk"})
        alice_api.json("PATCH", f"{members}/{created.json()['id']}", {"firstname": "Ann"})
        alice_api.call("DELETE", f"{members}/{created.json()['id']}")
    assert writes_to_webhooks(queries) == []
    assert not [
        q for q in queries.captured_queries if 'SELECT "members_list"."account_id"' in q["sql"]
    ]
    assert not WebhookDelivery.objects.exists()


def test_a_webhook_only_gets_the_events_it_asked_for_and_only_while_on(shop):
    subscribes = make_hook(shop, URL, "subscribe")
    updates = make_hook(shop, "https://other.shop.example/hook", "update")
    member = member_create(member_list=shop, values={"email": "ann@example.dk"})
    webhook_update(webhook=subscribes.webhook, active=False)
    member_create(member_list=shop, values={"email": "bo@example.dk"})
    member_update(member=member, values={"points": 1}, replace=False)
    assert list(WebhookDelivery.objects.values_list("webhook_id", "event").order_by("id")) == [
        (subscribes.webhook.pk, "subscribe"),
        (updates.webhook.pk, "update"),
    ]


# -- unsubscribes, bounces, complaints --------------------------------------------------


@pytest.fixture
def campaign(personas: Personas) -> Campaign:
    return Campaign.objects.create(account=personas.account_a, name="Spring")


def test_an_unsubscribe_from_a_campaign_names_the_campaign_once(shop, campaign):
    make_hook(shop, URL, "unsubscribe")
    member = member_create(member_list=shop, values={"email": "ann@example.dk"})
    assert member_unsubscribe(member=member, campaign_id=campaign.pk, source="one-click")
    assert not member_unsubscribe(member=member, campaign_id=campaign.pk, source="one-click")
    [payload] = payloads()
    assert payload["type"] == "unsubscribe" and payload["campaign_id"] == campaign.pk
    assert payload["member"]["status"]["status"] == "unsubscribed"


def test_a_hard_bounce_tells_each_hooked_list_that_holds_the_address(
    personas: Personas, shop, campaign
):
    make_hook(shop, URL, "hardbounce")
    other = list_create(account=personas.account_a, name="Other")  # no webhook
    ann = member_create(member_list=shop, values={"email": "ann@example.dk"})
    member_create(member_list=other, values={"email": "ann@example.dk"})
    for _ in range(2):  # the second bounce changes nothing and tells nobody
        bounce_record(
            account=personas.account_a,
            email="Ann@Example.dk",
            kind=BounceKind.HARD,
            source="smtp",
            reason="550 no such user",
            campaign=campaign,
        )
    [payload] = payloads()
    assert (payload["type"], payload["member_id"]) == ("hardbounce", str(ann.pk))
    assert payload["member"]["status"]["status"] == "bounced"
    assert payload["campaign_id"] == campaign.pk


def test_a_complaint_is_a_spam_complaint_event(personas: Personas, shop):
    make_hook(shop, URL, "spamComplaint", "hardbounce")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    bounce_record(
        account=personas.account_a,
        email="ann@example.dk",
        kind=BounceKind.COMPLAINT,
        source="postmark",
        reason="spam",
    )
    bounce_record(
        account=personas.account_a,
        email="ann@example.dk",
        kind=BounceKind.SOFT,
        source="smtp",
        reason="452 full",
    )
    assert [(p["type"], p["member"]["status"]["status"]) for p in payloads()] == [
        ("spamComplaint", "complained")
    ]


# -- the sending pipeline ---------------------------------------------------------------


def _send(personas: Personas, member_list: List, monkeypatch) -> Campaign:
    """A campaign to the list, sent in this process through Django's test mail outbox."""
    SenderDomain.objects.create(account=personas.account_a, domain="shop.example", verified=True)
    campaign = Campaign.objects.create(
        account=personas.account_a,
        name="Sale",
        subject="Sale",
        from_email="news@shop.example",
        html="<p>Hej</p>",
    )
    CampaignTarget.objects.create(campaign=campaign, list=member_list)
    campaign_start(campaign=campaign)
    campaign_prepare(campaign_id=campaign.pk)
    monkeypatch.setattr(sending, "shared_transport", DjangoTransport)
    monkeypatch.setattr(tasks.webhook_send, "delay", lambda *args: None)
    sending.campaign_deliver(campaign_id=campaign.pk)
    return campaign


def test_sent_events_are_written_in_one_statement_per_batch(
    personas: Personas, shop, monkeypatch, mailoutbox
):
    hook = make_hook(shop, URL, "sent")
    for name in ("ann", "bo", "cy"):
        member_create(member_list=shop, values={"email": f"{name}@example.dk", "points": 2})
    with CaptureQueriesContext(connection) as queries:
        campaign = _send(personas, shop, monkeypatch)
    assert len(mailoutbox) == 3
    inserts = [q for q in writes_to_webhooks(queries) if q.startswith("INSERT")]
    assert len(inserts) == 1
    sent = payloads("sent")
    assert sorted(p["member"]["fields"]["email"] for p in sent) == [
        "ann@example.dk",
        "bo@example.dk",
        "cy@example.dk",
    ]
    assert {(p["campaign_id"], p["list_id"], p["member"]["fields"]["points"]) for p in sent} == {
        (campaign.pk, shop.pk, 2)
    }
    assert set(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == {hook.webhook.pk}


def test_a_send_to_a_list_without_a_sent_webhook_costs_nothing_per_message(
    personas: Personas, shop, monkeypatch, mailoutbox
):
    make_hook(shop, URL, "subscribe", "open")
    for name in ("ann", "bo", "cy"):
        member_create(member_list=shop, values={"email": f"{name}@example.dk"})
    webhook_lists(account_id=personas.account_a.pk, event="sent")  # the lookup, filled
    before = WebhookDelivery.objects.count()
    with CaptureQueriesContext(connection) as queries:
        _send(personas, shop, monkeypatch)
    assert len(mailoutbox) == 3
    assert writes_to_webhooks(queries) == []
    assert WebhookDelivery.objects.count() == before


# -- opens and clicks -------------------------------------------------------------------


def test_opens_and_clicks_from_the_tracking_buffer(
    personas: Personas, shop, campaign, sends, django_capture_on_commit_callbacks
):
    hook = make_hook(shop, URL, "click", "open")
    Link.objects.create(campaign=campaign, position=1, url="https://shop.example/bread")
    ann = member_create(member_list=shop, values={"email": "ann@example.dk"})
    bo = member_create(member_list=shop, values={"email": "bo@example.dk"})
    base = {"delivery_id": 1, "campaign_id": campaign.pk, "created_at": "2026-05-04T09:00:00Z"}
    with django_capture_on_commit_callbacks(execute=True):
        written = webhooks_emit_tracking(
            [
                {**base, "member_id": ann.pk, "kind": "open", "position": None},
                {**base, "member_id": str(ann.pk), "kind": "click", "position": 1},
                {**base, "member_id": bo.pk, "kind": "open", "machine": True},  # prefetched
                {**base, "member_id": uuid.uuid4(), "kind": "open"},  # gone meanwhile
                {**base, "member_id": bo.pk, "kind": "sent"},  # not tracking
            ]
        )
    assert written == 2
    opened, clicked = payloads()
    assert (opened["type"], opened["member_id"], opened["campaign_id"]) == (
        "open",
        str(ann.pk),
        campaign.pk,
    )
    assert "url" not in opened
    assert (clicked["type"], clicked["url"]) == ("click", "https://shop.example/bread")
    assert sends == [hook.webhook.pk]  # one send for the flush


def test_tracking_events_cost_one_lookup_when_nobody_listens(personas: Personas, shop, campaign):
    ann = member_create(member_list=shop, values={"email": "ann@example.dk"})
    event = {"campaign_id": campaign.pk, "member_id": ann.pk, "kind": "open", "delivery_id": 1}
    webhooks_emit_tracking([event])  # the campaign's account, looked up once
    with CaptureQueriesContext(connection) as queries:
        assert webhooks_emit_tracking([event] * 500) == 0
    assert queries.captured_queries == []
    assert Member.objects.filter(pk=ann.pk).exists()
