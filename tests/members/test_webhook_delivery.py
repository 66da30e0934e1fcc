"""Webhook delivery over real HTTP: signed, retried with time moved rather than waited
for, never redirected, bounded in time, switched off after repeated failure, replayed
from the log, never sent to our own network, and never shown to another account."""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.message import Message

import pytest
from django.urls import reverse

from members import webhook_delivery
from members.models import Webhook, WebhookDelivery
from members.services import list_create, member_create, member_update
from members.webhook_delivery import webhook_send, webhooks_due
from members.webhooks import webhook_update
from tests.api.conftest import Api
from tests.conftest import Personas
from tests.members.test_webhook_delivery_support import (
    Answer,
    Receiver,
    Request,
    alice_api,
    allow_private,
    carol_api,
    make_hook,
    queued,
    receiver,
    self_signed,
    shop,
)

__all__ = ["alice_api", "allow_private", "carol_api", "queued", "receiver", "shop"]  # fixtures

START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


def text_of(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    payloads = (part.get_payload(decode=True) for part in parts)
    return "".join(p.decode() for p in payloads if isinstance(p, bytes))


def check_signatures(request: Request, secret: str) -> None:
    """What a receiver should do: the HMAC header over the raw body, and the md5 field."""
    body = request.json()
    parts = dict(
        part.split("=", 1) for part in request.headers["X-Heyloyalty-Signature"].split(",")
    )
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 300  # fresh: not a replay of an old message
    md5 = hashlib.md5(
        f"{body['member_id']}{body['list_id']}{body['type']}{secret}".encode(),
        usedforsecurity=False,
    ).hexdigest()
    assert body["signature"] == md5


def test_a_subscribe_through_the_api_arrives_signed(
    alice_api: Api,
    shop,
    receiver: Receiver,
    allow_private,
    queued,
    django_capture_on_commit_callbacks,
):
    created = alice_api.multipart(
        "POST",
        f"lists/{shop.pk}/webhooks",
        {"url": receiver.url, "webhookTriggers": {"0": "subscribe"}},
    )
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]

    with django_capture_on_commit_callbacks(execute=True):
        answer = alice_api.json(
            "POST",
            f"lists/{shop.pk}/members",
            {"email": "Jens@Example.dk", "firstname": "Jens", "points": 7, "shoe": 2},
        )
    assert answer.status_code == 201, answer.content

    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Heyloyalty-Event"] == "subscribe"
    body = request.json()
    assert list(body)[:5] == ["member_id", "list_id", "type", "signature", "member"]
    assert body["member_id"] == answer.json()["id"] == body["member"]["id"]
    assert (body["list_id"], body["type"]) == (shop.pk, "subscribe")
    fields = body["member"]["fields"]
    assert fields["email"] == "jens@example.dk"
    assert (fields["firstname"], fields["points"]) == ("Jens", 7)
    assert fields["shoe"] == {"id": 2, "label": "41"}
    assert "password" in fields and fields["password"] is None
    assert body["member"]["status"] == {"status": "active", "email": "active", "mobile": "active"}
    check_signatures(request, secret)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert request.headers["X-Heyloyalty-Delivery"] == str(delivery.pk)


def test_a_receiver_answering_500_gets_it_on_the_retry(
    shop, receiver: Receiver, allow_private, queued, clock, django_capture_on_commit_callbacks
):
    hook = make_hook(shop, receiver.url, "subscribe")
    receiver.answers = [Answer(500, b"database down")]
    with django_capture_on_commit_callbacks(execute=True):
        member_create(member_list=shop, values={"email": "ann@example.dk"})

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert (delivery.response_status, delivery.response_body) == (500, "database down")
    assert delivery.next_attempt_at == START + timedelta(minutes=1)
    assert Webhook.objects.get().failures_in_row == 1

    assert webhooks_due() == 0  # not yet
    clock.shift(timedelta(seconds=59))
    assert webhooks_due() == 0
    clock.shift(timedelta(seconds=2))
    assert webhooks_due() == 1

    first, second = receiver.requests
    assert first.body == second.body
    check_signatures(second, hook.secret)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 2, 200)
    assert Webhook.objects.get().failures_in_row == 0


def test_retries_wait_longer_each_time_and_then_give_up(
    shop, receiver: Receiver, allow_private, queued, clock, settings
):
    settings.WEBHOOK_RETRY_DELAYS = [60, 300, 1800]
    make_hook(shop, receiver.url, "subscribe")
    receiver.default = Answer(503)
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    delivery = WebhookDelivery.objects.get()

    waits = []
    for _ in range(4):
        webhook_send(webhook_id=delivery.webhook_id)
        delivery.refresh_from_db()
        waits.append(delivery.next_attempt_at - datetime.now(UTC))
        clock.move_to(delivery.next_attempt_at, tick=False)
    assert waits[:3] == [timedelta(seconds=60), timedelta(seconds=300), timedelta(seconds=1800)]
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert len(receiver.requests) == 4
    assert webhooks_due() == 0


def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    shop, receiver: Receiver, allow_private, queued, django_capture_on_commit_callbacks
):
    make_hook(shop, receiver.url, "subscribe")
    elsewhere = f"http://127.0.0.1:{receiver.port}/elsewhere"
    receiver.answers = [Answer(302, b"", {"Location": elsewhere})]
    with django_capture_on_commit_callbacks(execute=True):
        member_create(member_list=shop, values={"email": "ann@example.dk"})

    assert [r.path for r in receiver.requests] == ["/hook"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.response_status) == ("pending", 302)
    assert "redirect" in delivery.error and elsewhere in delivery.error


def test_a_receiver_that_does_not_answer_in_time_counts_as_a_failure(
    shop, receiver: Receiver, allow_private, queued, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    make_hook(shop, receiver.url, "subscribe")
    receiver.answers = [Answer(200, delay=10)]
    with django_capture_on_commit_callbacks(execute=True):
        member_create(member_list=shop, values={"email": "ann@example.dk"})

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, None)
    assert delivery.error == "no answer within 1 seconds"
    assert delivery.duration_ms is not None and 900 <= delivery.duration_ms < 3000


def test_a_refused_connection_counts_as_a_failure(shop, allow_private, queued):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    make_hook(shop, f"http://127.0.0.1:{port}/hook", "subscribe")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    webhook_send(webhook_id=Webhook.objects.get().pk)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.error.startswith("could not connect")


def test_events_behind_a_failed_one_wait_for_it_and_go_out_in_order(
    shop, receiver: Receiver, allow_private, queued, clock
):
    make_hook(shop, receiver.url, "subscribe", "update")
    receiver.answers = [Answer(500)]
    member = member_create(member_list=shop, values={"email": "ann@example.dk"})
    member_update(member=member, values={"firstname": "Ann"}, replace=False)
    webhook_send(webhook_id=Webhook.objects.get().pk)
    assert len(receiver.requests) == 1  # the update waits behind the failed subscribe

    clock.shift(timedelta(minutes=1))
    webhooks_due()
    assert [r.json()["type"] for r in receiver.requests] == ["subscribe", "subscribe", "update"]
    assert receiver.requests[2].json()["member"]["fields"]["firstname"] == "Ann"


def test_after_repeated_failure_the_webhook_is_switched_off_and_the_owners_told_once(
    personas: Personas,
    shop,
    receiver: Receiver,
    allow_private,
    queued,
    clock,
    settings,
    smtp_server,
    django_capture_on_commit_callbacks,
):
    settings.WEBHOOK_FAILURES_TO_DISABLE = 3
    settings.WEBHOOK_RETRY_DELAYS = [60] * 10
    make_hook(shop, receiver.url, "subscribe", contact="dev@shop.example")
    receiver.default = Answer(500, b"still down")
    with django_capture_on_commit_callbacks(execute=True):
        member_create(member_list=shop, values={"email": "ann@example.dk"})
    for _ in range(5):
        clock.shift(timedelta(minutes=1))
        with django_capture_on_commit_callbacks(execute=True):
            webhooks_due()

    assert len(receiver.requests) == 3
    webhook = Webhook.objects.get()
    assert (webhook.active, webhook.failures_in_row) == (False, 3)
    assert webhook.disabled_at == START + timedelta(minutes=2)
    assert "3 tries in a row failed" in webhook.disabled_reason
    assert "HTTP 500" in webhook.disabled_reason
    [(to, message)] = smtp_server.messages
    assert sorted(to) == ["alice@a.test", "dev@shop.example"]  # the owner; not Bob, a user
    text = text_of(message)
    assert receiver.url in text and "still down" in text and "Shop" in message["Subject"]
    assert reverse("members:webhook_detail", args=[shop.pk, webhook.pk]) in text

    # Off: new events are not even written, and nothing is sent or mailed again.
    with django_capture_on_commit_callbacks(execute=True):
        member_create(member_list=shop, values={"email": "bo@example.dk"})
    assert WebhookDelivery.objects.count() == 1
    clock.shift(timedelta(hours=1))
    assert webhooks_due() == 0
    assert len(smtp_server.messages) == 1

    # On again: what waited goes out at once.
    receiver.default = Answer(204, b"")
    with django_capture_on_commit_callbacks(execute=True):
        webhook_update(webhook=webhook, active=True)
    webhook.refresh_from_db()
    assert (webhook.active, webhook.failures_in_row, webhook.disabled_at) == (True, 0, None)
    assert WebhookDelivery.objects.get().status == "delivered"
    assert len(receiver.requests) == 4


def test_replay_from_the_log_sends_the_same_payload_again(
    alice_api: Api,
    shop,
    receiver: Receiver,
    allow_private,
    queued,
    django_capture_on_commit_callbacks,
):
    hook = make_hook(shop, receiver.url, "subscribe")
    with django_capture_on_commit_callbacks(execute=True):
        member_create(member_list=shop, values={"email": "ann@example.dk", "points": 3})
    original = WebhookDelivery.objects.get()
    path = f"lists/{shop.pk}/webhooks/{hook.webhook.pk}/deliveries"

    with django_capture_on_commit_callbacks(execute=True):
        replayed = alice_api.call("POST", f"{path}/{original.pk}/replay")
    assert replayed.status_code == 202, replayed.content
    copy = WebhookDelivery.objects.get(pk=replayed.json()["id"])
    assert replayed.json() == {"id": copy.pk, "status": "pending", "replay_of": original.pk}

    first, second = receiver.requests
    assert first.body == second.body
    assert second.headers["X-Heyloyalty-Delivery"] == str(copy.pk)
    check_signatures(second, hook.secret)
    log = alice_api.get(path).json()
    assert [d["id"] for d in log["deliveries"]] == [copy.pk, original.pk]
    assert log["deliveries"][0]["replay_of"] == original.pk
    assert log["deliveries"][0]["status"] == "delivered"
    assert log["deliveries"][1]["payload"]["member"]["fields"]["points"] == 3
    assert alice_api.get(path, {"status": "pending"}).json()["total"] == 0
    assert alice_api.get(path, {"status": "nonsense"}).status_code == 400


def test_replay_from_the_dashboard(
    client,
    personas: Personas,
    shop,
    receiver: Receiver,
    allow_private,
    queued,
    django_capture_on_commit_callbacks,
):
    hook = make_hook(shop, receiver.url, "subscribe")
    with django_capture_on_commit_callbacks(execute=True):
        member_create(member_list=shop, values={"email": "ann@example.dk"})
    original = WebhookDelivery.objects.get()
    client.force_login(personas.alice)

    page = client.get(reverse("members:webhooks", args=[shop.pk]))
    assert page.status_code == 200
    assert receiver.url in page.text and f"#{original.pk}" in page.text
    replay = reverse("members:webhook_replay", args=[shop.pk, hook.webhook.pk, original.pk])
    assert replay in page.text
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(replay, follow=True)
    assert answer.status_code == 200
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    detail = client.get(reverse("members:webhook_detail", args=[shop.pk, hook.webhook.pk]))
    assert f"replay of #{original.pk}" in detail.text


def test_a_hostname_that_resolves_to_loopback_is_refused_unless_allowed(
    shop, receiver: Receiver, queued, clock, settings, monkeypatch
):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    def resolve(host: str, port: int) -> list:
        """The name is public-looking; its DNS answer is not."""
        assert host == "hooks.shop.example"
        return [(socket.AF_INET, ("127.0.0.1", port))]

    monkeypatch.setattr(webhook_delivery, "resolve", resolve)
    make_hook(shop, f"http://hooks.shop.example:{receiver.port}/hook", "subscribe")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    webhook_send(webhook_id=Webhook.objects.get().pk)

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending"
    assert "hooks.shop.example resolves to 127.0.0.1" in delivery.error
    assert "private or local" in delivery.error

    settings.WEBHOOK_ALLOW_PRIVATE = True  # development and tests only
    clock.shift(timedelta(minutes=1))
    webhooks_due()
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.shop.example:{receiver.port}"
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


@pytest.mark.parametrize(
    "address", ["10.0.0.8", "169.254.169.254", "::1", "::ffff:127.0.0.1", "192.168.1.1"]
)
def test_private_addresses_are_refused_whatever_the_name(
    shop, queued, settings, monkeypatch, address
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(webhook_delivery, "resolve", lambda host, port: [(family, (address, port))])
    make_hook(shop, "https://hooks.shop.example/hook", "subscribe")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    webhook_send(webhook_id=Webhook.objects.get().pk)
    assert "private or local" in WebhookDelivery.objects.get().error


def test_other_accounts_webhooks_and_deliveries_answer_404(
    alice_api: Api, carol_api: Api, personas: Personas, shop, client
):
    hook = make_hook(shop, "https://hooks.shop.example/hook", "subscribe")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    delivery = WebhookDelivery.objects.get()
    path = f"lists/{shop.pk}/webhooks/{hook.webhook.pk}/deliveries"
    carols_list = list_create(account=personas.account_b, name="Carol's")
    carols_hook = make_hook(carols_list, "https://carol.example/hook", "subscribe")

    assert carol_api.get(path).status_code == 404
    assert carol_api.call("POST", f"{path}/{delivery.pk}/replay").status_code == 404
    own_list = f"lists/{carols_list.pk}/webhooks/{hook.webhook.pk}/deliveries"
    assert carol_api.get(own_list).status_code == 404
    # Alice's delivery through Carol's webhook, and Carol's webhook through Alice's list.
    mixed = f"lists/{carols_list.pk}/webhooks/{carols_hook.webhook.pk}/deliveries/{delivery.pk}"
    assert carol_api.call("POST", f"{mixed}/replay").status_code == 404
    foreign = f"lists/{shop.pk}/webhooks/{carols_hook.webhook.pk}/deliveries"
    assert alice_api.get(foreign).status_code == 404
    assert WebhookDelivery.objects.count() == 1

    client.force_login(personas.carol)
    for url in (
        reverse("members:webhooks", args=[shop.pk]),
        reverse("members:webhook_detail", args=[shop.pk, hook.webhook.pk]),
    ):
        assert client.get(url).status_code == 404
    replay = reverse("members:webhook_replay", args=[shop.pk, hook.webhook.pk, delivery.pk])
    assert client.post(replay).status_code == 404
    assert WebhookDelivery.objects.count() == 1


def test_a_switched_off_webhook_cannot_replay(alice_api: Api, shop):
    hook = make_hook(shop, "https://hooks.shop.example/hook", "subscribe")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    webhook_update(webhook=hook.webhook, active=False)
    delivery = WebhookDelivery.objects.get()
    path = f"lists/{shop.pk}/webhooks/{hook.webhook.pk}/deliveries/{delivery.pk}/replay"
    answer = alice_api.call("POST", path)
    assert answer.status_code == 400
    assert "switched off" in answer.json()["error"]


def test_a_run_of_deliveries_shares_one_connection(shop, receiver: Receiver, allow_private, queued):
    make_hook(shop, receiver.url, "subscribe")
    for name in ("ann", "bo", "cy"):
        member_create(member_list=shop, values={"email": f"{name}@example.dk"})
    webhook_send(webhook_id=Webhook.objects.get().pk)
    emails = [r.json()["member"]["fields"]["email"] for r in receiver.requests]
    assert emails == ["ann@example.dk", "bo@example.dk", "cy@example.dk"]  # in order
    assert len({r.peer for r in receiver.requests}) == 1  # kept alive
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_worker_that_died_holding_deliveries_is_relieved_after_its_lease(
    shop, receiver: Receiver, allow_private, queued, clock
):
    make_hook(shop, receiver.url, "subscribe")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    claimed = webhook_delivery._claim(Webhook.objects.get().pk)  # and then the worker died
    assert claimed is not None
    assert webhooks_due() == 0  # held
    assert webhook_send(webhook_id=claimed[0].pk) is False  # a second worker leaves it
    assert receiver.requests == []
    clock.shift(webhook_delivery._lease() + timedelta(seconds=1))
    assert webhooks_due() == 1
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == "delivered"


def test_old_finished_deliveries_are_pruned(shop, clock, settings):
    settings.WEBHOOK_LOG_DAYS = 30
    make_hook(shop, "https://hooks.shop.example/hook", "subscribe")
    member_create(member_list=shop, values={"email": "old@example.dk"})
    member_create(member_list=shop, values={"email": "waiting@example.dk"})
    old, _waiting = WebhookDelivery.objects.order_by("id")
    WebhookDelivery.objects.filter(pk=old.pk).update(status="delivered")
    clock.shift(timedelta(days=31))
    member_create(member_list=shop, values={"email": "new@example.dk"})
    assert webhook_delivery.webhooks_prune() == 1
    assert WebhookDelivery.objects.filter(pk=old.pk).exists() is False
    assert WebhookDelivery.objects.count() == 2  # pending ones are never pruned


def test_https_checks_the_certificate_against_the_name(
    shop, queued, clock, settings, monkeypatch, tmp_path
):
    """TLS to the name in the URL (SNI and certificate check), at the address checked."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    pem = self_signed("hooks.shop.example", tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(pem)
    monkeypatch.setattr(
        webhook_delivery, "resolve", lambda host, port: [(socket.AF_INET, ("127.0.0.1", port))]
    )
    with Receiver(tls=server_side) as receiver:
        make_hook(shop, f"https://hooks.shop.example:{receiver.port}/hook", "subscribe")
        member_create(member_list=shop, values={"email": "ann@example.dk"})
        webhook_send(webhook_id=Webhook.objects.get().pk)
        delivery = WebhookDelivery.objects.get()
        assert "certificate verify failed" in delivery.error  # not a CA we trust
        assert receiver.requests == []

        trusting = ssl.create_default_context(cafile=str(pem))
        monkeypatch.setattr(webhook_delivery, "_tls", lambda: trusting)
        clock.shift(timedelta(minutes=1))
        webhooks_due()
        delivery.refresh_from_db()
        assert receiver.requests, delivery.error
        [request] = receiver.requests
        assert request.headers["Host"] == f"hooks.shop.example:{receiver.port}"
        delivery.refresh_from_db()
        assert delivery.status == "delivered"


def test_the_webhooks_page_costs_the_same_for_many_webhooks_and_speaks_danish(
    client, personas: Personas, shop, django_assert_max_num_queries
):
    for n in range(5):
        hook = make_hook(shop, f"https://hooks{n}.shop.example/hook", "subscribe")
    member_create(member_list=shop, values={"email": "ann@example.dk"})
    webhook_delivery.webhook_disable(webhook=hook.webhook, reason="10 tries in a row failed")
    client.force_login(personas.alice)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("members:webhooks", args=[shop.pk]))
    assert page.status_code == 200
    assert page.text.count("Send again") == 5  # each webhook with its one delivery
    assert "Switched off for failing" in page.text

    page = client.get(reverse("members:webhooks", args=[shop.pk]), HTTP_ACCEPT_LANGUAGE="da")
    assert "Send igen" in page.text and "Slået fra efter fejl" in page.text
