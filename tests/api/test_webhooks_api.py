"""Webhook subscriptions through the API (H1 to H4), sent the way HLWebhooks sends them."""

from __future__ import annotations

import pytest

from heyloyalty import keys
from members import services
from members.models import Webhook
from members.services import MemberError
from members.webhook_delivery import webhook_disable
from members.webhooks import webhook_secret, webhook_url_check
from tests.api.conftest import Api

TRIGGERS = [
    "subscribe",
    "update",
    "unsubscribe",
    "spamComplaint",
    "click",
    "open",
    "hardbounce",
    "sent",
]


def webhooks_path(shop_list) -> str:
    return f"lists/{shop_list.pk}/webhooks"


def php_triggers(*enabled: str) -> dict[str, str]:
    """HLWebhooks::setActiveWebhooks (>= 1.5.2): every name at 0, the enabled ones appended
    under numeric keys."""
    return {**dict.fromkeys(TRIGGERS, "0"), **{str(i): name for i, name in enumerate(enabled)}}


def create(api: Api, shop_list, **data) -> dict:
    body = {"url": "https://shop.example.com/hook", "contact_email": "dev@shop.example.com", **data}
    response = api.multipart("POST", webhooks_path(shop_list), body)
    assert response.status_code == 201, response.content
    return response.json()


# -- create (H2) and list (H1) ----------------------------------------------------------


def test_the_php_client_creates_a_webhook_with_its_mixed_trigger_encoding(
    alice_api: Api, shop_list
):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("subscribe", "unsubscribe"))

    webhook = Webhook.objects.get(pk=created["id"])
    assert webhook.list == shop_list
    assert webhook.url == "https://shop.example.com/hook"
    assert webhook.contact_email == "dev@shop.example.com"
    assert webhook.events == ["subscribe", "unsubscribe"]
    assert webhook.active is True


def test_the_list_of_webhooks_shows_triggers_as_the_client_writes_them(alice_api: Api, shop_list):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("open", "sent"))

    body = alice_api.get(webhooks_path(shop_list)).json()

    assert len(body) == 1
    assert body[0]["id"] == created["id"]
    assert body[0]["url"] == "https://shop.example.com/hook"
    assert body[0]["contact_email"] == "dev@shop.example.com"
    assert body[0]["webhookTriggers"] == {**dict.fromkeys(TRIGGERS, 0), "open": 1, "sent": 1}
    assert body[0]["events"] == ["open", "sent"]


def test_the_older_encoding_with_named_ones_enables_them(alice_api: Api, shop_list):
    created = create(
        alice_api, shop_list, webhookTriggers={**dict.fromkeys(TRIGGERS, "0"), "click": "1"}
    )

    assert Webhook.objects.get(pk=created["id"]).events == ["click"]


def test_a_json_list_of_events_is_read_too(alice_api: Api, shop_list):
    response = alice_api.json(
        "POST",
        webhooks_path(shop_list),
        {"url": "https://shop.example.com/h", "webhookTriggers": ["hardbounce", "spamComplaint"]},
    )

    assert response.status_code == 201
    assert Webhook.objects.get(pk=response.json()["id"]).events == ["spamComplaint", "hardbounce"]


def test_a_webhook_without_triggers_is_stored_with_none(alice_api: Api, shop_list):
    # HLWebhooks::create($listId, $url) with the default empty settings
    created = create(alice_api, shop_list, webhookTriggers=php_triggers())

    assert Webhook.objects.get(pk=created["id"]).events == []


def test_the_secret_is_shown_once_and_stored_encrypted(alice_api: Api, shop_list):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("open"))

    webhook = Webhook.objects.get(pk=created["id"])
    assert len(created["secret"]) == 64
    assert created["secret"] not in webhook.secret_encrypted
    assert webhook.secret_encrypted.startswith(f"{keys.field_keys()[0].id}$")
    assert webhook_secret(webhook=webhook) == created["secret"]
    assert created["secret"] not in alice_api.get(webhooks_path(shop_list)).text
    assert created["secret"] not in alice_api.get(f"{webhooks_path(shop_list)}/{webhook.pk}").text


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "named"),
    [
        ({"webhookTriggers": {"0": "bounce"}}, "webhookTriggers", "'bounce'"),
        ({"webhookTriggers": {"explode": "1"}}, "webhookTriggers", "'explode'"),
        ({"webhookTriggers": {"open": "maybe"}}, "webhookTriggers[open]", "boolean"),
        ({"url": "ftp://shop.example.com/"}, "url", "http"),
        ({"url": "http://127.0.0.1:6379/"}, "url", "127.0.0.1"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url", "169.254.169.254"),
        ({"url": ""}, "url", "http"),
        ({"contact_email": "not an email"}, "contact_email", "'not an email'"),
    ],
)
def test_a_bad_webhook_is_a_400_naming_what_is_wrong(alice_api: Api, shop_list, data, field, named):
    body = {"url": "https://shop.example.com/hook", "webhookTriggers": php_triggers("open"), **data}

    response = alice_api.multipart("POST", webhooks_path(shop_list), body)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert named in response.json()["error"]
    assert not Webhook.objects.exists()


def test_an_unknown_trigger_left_at_0_is_ignored(alice_api: Api, shop_list):
    # A newer client may list names we do not know yet, all at 0.
    created = create(alice_api, shop_list, webhookTriggers={**php_triggers("open"), "heypush": "0"})

    assert Webhook.objects.get(pk=created["id"]).events == ["open"]


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/hooks/heyloyalty?token=1",
        "http://93.184.216.34:8080/hook",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
        "https://xn--bcher-kva.example/hook",
    ],
)
def test_a_public_http_or_https_url_is_accepted(url: str):
    assert webhook_url_check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/hook",
        "http://127.0.0.1/hook",
        "http://127.1/hook",
        "http://0x7f.1/hook",
        "http://0.0.0.0/hook",
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://224.0.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:7f00:1]/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[2002:7f00:1::]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://redis:6379/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/",
    ],
)
def test_a_private_or_local_address_is_refused(url: str):
    with pytest.raises(MemberError, match="private or local address") as caught:
        webhook_url_check(url)

    assert caught.value.field == "url"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://shop.example.com/",
        "javascript:alert(1)",
        "https://user:pw@shop.example.com/hook",
        "https://shop example.com/hook",
        "https://",
        "shop.example.com/hook",
        "https://shop.example.com/" + "a" * 2000,
    ],
)
def test_a_url_that_is_not_plain_http_or_https_is_refused(url: str):
    with pytest.raises(MemberError) as caught:
        webhook_url_check(url)

    assert caught.value.field == "url"


# -- update (H3), read and delete (H4) ----------------------------------------------------


def test_the_php_client_updates_a_webhook_urlencoded_and_the_secret_stays(
    alice_api: Api, shop_list
):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("open"))
    path = f"{webhooks_path(shop_list)}/{created['id']}"

    response = alice_api.form(
        "PUT",
        path,
        {
            "url": "https://new.example.com/hook",
            "contact_email": "new@shop.example.com",
            "webhookTriggers": php_triggers("click", "sent"),
        },
    )

    assert response.status_code == 204
    assert response.content == b""
    webhook = Webhook.objects.get(pk=created["id"])
    assert (webhook.url, webhook.contact_email, webhook.events) == (
        "https://new.example.com/hook",
        "new@shop.example.com",
        ["click", "sent"],
    )
    assert webhook_secret(webhook=webhook) == created["secret"]


def test_a_webhook_can_be_switched_off_and_read_back(alice_api: Api, shop_list):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("open"))
    path = f"{webhooks_path(shop_list)}/{created['id']}/"

    assert alice_api.form("PUT", path, {"active": "0"}).status_code == 204

    body = alice_api.get(path).json()
    assert body["active"] is False
    assert body["events"] == ["open"]


def test_an_update_to_a_private_address_is_a_400_and_changes_nothing(alice_api: Api, shop_list):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("open"))

    response = alice_api.form(
        "PUT", f"{webhooks_path(shop_list)}/{created['id']}", {"url": "http://10.1.2.3/"}
    )

    assert response.status_code == 400
    assert response.json()["field"] == "url"
    assert Webhook.objects.get(pk=created["id"]).url == "https://shop.example.com/hook"


def test_the_php_1_5_2_put_without_an_id_answers_json_405(alice_api: Api, shop_list):
    response = alice_api.form(
        "PUT", f"{webhooks_path(shop_list)}/", {"url": "https://x.example.com/"}
    )

    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": "Method Not Allowed"}


def test_deleting_a_webhook_answers_204_and_it_is_gone(alice_api: Api, shop_list):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("open"))
    path = f"{webhooks_path(shop_list)}/{created['id']}"

    assert alice_api.call("DELETE", path).status_code == 204

    assert alice_api.get(path).status_code == 404
    assert not Webhook.objects.exists()


def test_a_missing_webhook_or_list_is_404(alice_api: Api, shop_list):
    for path in (f"{webhooks_path(shop_list)}/424242", "lists/424242/webhooks"):
        response = alice_api.get(path)
        assert response.status_code == 404
        assert response.json() == {"code": 404, "message": "Not Found"}


def test_carol_gets_404_for_alices_webhook_even_through_her_own_list(
    alice_api: Api, carol_api: Api, shop_list, personas
):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("open"))
    carols_list = services.list_create(account=personas.account_b, name="Carol's")

    for path in (
        f"{webhooks_path(shop_list)}/{created['id']}",
        f"lists/{carols_list.pk}/webhooks/{created['id']}",
    ):
        assert carol_api.get(path).status_code == 404
        assert carol_api.form("PUT", path, {"url": "https://carol.example.com/"}).status_code == 404
        assert carol_api.call("DELETE", path).status_code == 404
    assert carol_api.get(f"lists/{carols_list.pk}/webhooks").json() == []
    assert Webhook.objects.get(pk=created["id"]).url == "https://shop.example.com/hook"


# -- delivery state and log (our additions) -----------------------------------------------


def test_a_webhook_switched_off_for_failing_shows_why_and_put_active_switches_it_on(
    alice_api: Api, shop_list
):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("subscribe"))
    path = f"{webhooks_path(shop_list)}/{created['id']}"
    webhook = Webhook.objects.get(pk=created["id"])
    Webhook.objects.filter(pk=webhook.pk).update(failures_in_row=10)
    webhook_disable(webhook=webhook, reason="10 tries in a row failed. The last: HTTP 500")

    shown = alice_api.get(path).json()
    assert (shown["active"], shown["failures_in_row"]) == (False, 10)
    assert shown["disabled_at"] is not None
    assert shown["disabled_reason"] == "10 tries in a row failed. The last: HTTP 500"

    assert alice_api.form("PUT", path, {"active": "1"}).status_code == 204
    shown = alice_api.get(path).json()
    assert (shown["active"], shown["failures_in_row"], shown["disabled_at"]) == (True, 0, None)
    assert shown["disabled_reason"] is None


def test_the_delivery_log_pages_newest_first(alice_api: Api, shop_list):
    created = create(alice_api, shop_list, webhookTriggers=php_triggers("subscribe"))
    for i in range(3):
        alice_api.json("POST", f"lists/{shop_list.pk}/members", {"email": f"m{i}@example.dk"})
    path = f"{webhooks_path(shop_list)}/{created['id']}/deliveries"

    first = alice_api.get(path, {"perpage": 2}).json()
    assert (first["total"], first["page"], first["perpage"]) == (3, 1, 2)
    emails = [d["payload"]["member"]["fields"]["email"] for d in first["deliveries"]]
    assert emails == ["m2@example.dk", "m1@example.dk"]
    delivery = first["deliveries"][0]
    assert (delivery["event"], delivery["status"], delivery["attempts"]) == (
        "subscribe",
        "pending",
        0,
    )
    assert "signature" not in delivery["payload"]  # made when sent, from the secret
    second = alice_api.get(path, {"perpage": 2, "page": 2}).json()
    assert [d["payload"]["member"]["fields"]["email"] for d in second["deliveries"]] == [
        "m0@example.dk"
    ]
    assert alice_api.get(path, {"perpage": 0}).status_code == 400
    assert alice_api.get(f"{path}/", {"status": "delivered"}).json()["total"] == 0


def test_replaying_a_delivery_of_another_webhook_is_404(alice_api: Api, shop_list):
    one = create(alice_api, shop_list, webhookTriggers=php_triggers("subscribe"))
    other = create(alice_api, shop_list, webhookTriggers=php_triggers("update"))
    alice_api.json("POST", f"lists/{shop_list.pk}/members", {"email": "ann@example.dk"})
    delivery = Webhook.objects.get(pk=one["id"]).deliveries.get()

    path = f"{webhooks_path(shop_list)}/{other['id']}/deliveries/{delivery.pk}/replay"
    assert alice_api.call("POST", path).status_code == 404
    assert alice_api.call("GET", path).status_code == 405
