"""Webhook subscriptions in the Heyloyalty API (heyloyalty-api.md §5.6, H1 to H4), and
our additions: each webhook's delivery log and replay from it.

The PHP client (``HLWebhooks``) posts ``url``, ``contact_email`` and ``webhookTriggers``
(multipart on POST, urlencoded on PUT). Every list is looked up through the calling key's
account, every webhook through its list and every delivery through its webhook, so
another account's ids answer 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from heyloyalty.api.base import ApiView
from heyloyalty.api.params import ParamError, Params, to_bool, to_int, to_list
from members import selectors, webhook_delivery, webhooks
from members.models import List, Webhook, WebhookDelivery, WebhookDeliveryStatus, WebhookEvent
from members.serializers import stamp

JSON = OpenApiTypes.OBJECT

TRIGGERS = ", ".join(f"`{event}`" for event in WebhookEvent.values)
WEBHOOK_DESCRIPTION = f"""\
Body: `url` (http or https, to a public host: private, loopback and link-local
addresses, `localhost` and single-label names are refused), `contact_email` (optional;
told when delivery keeps failing), `active` (optional, default 1) and `webhookTriggers`,
the events to send: {TRIGGERS}.

`webhookTriggers` is read as the PHP client writes it: every name as a key with `0`, plus
the enabled names under numeric keys
(`webhookTriggers[subscribe]=0&…&webhookTriggers[0]=subscribe`). A named key with a true
value (`webhookTriggers[open]=1`) also enables it; a JSON list of names works too. An
unknown name that is enabled answers 400.

A webhook is `{{id, list_id, url, contact_email, active, webhookTriggers: {{name: 0|1}},
events, failures_in_row, disabled_at, disabled_reason, created_at, updated_at}}`. Create
answers 201 `{{id, secret}}`: the secret that signs deliveries, shown only this once.
After WEBHOOK_FAILURES_TO_DISABLE (10) failed tries in a row a webhook is switched off
(`active` 0, `disabled_at` and `disabled_reason` set) and its owners and `contact_email`
are mailed once; PUT `active=1` switches it on again and sends what waited.

**Delivery.** Each event is an HTTP POST of raw JSON (heyloyalty-api.md §8):
`{{"member_id", "list_id", "type", "signature", "member": {{"id", "fields": {{…every
field of the list…}}, "status": {{"status", "email", "mobile"}}}}}}`, plus `campaign_id`
for `sent`, `open` and `click` (and for `unsubscribe`, `hardbounce` and `spamComplaint`
when a campaign caused them) and the link's `url` for `click`. Any 2xx is delivered.
Anything else, a redirect (never followed) or no answer within WEBHOOK_TIMEOUT_SECONDS
(5) is retried after WEBHOOK_RETRY_DELAYS (1 min, 5 min, 30 min, 2 h, 6 h). A webhook's
events go out one at a time, in the order they happened.

**Signatures.** `signature` = hex `md5(member_id + list_id + type + secret)` (the strings
concatenated), for Heyloyalty compatibility. Check the header instead:
`X-Heyloyalty-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`;
compare in constant time and refuse a `t` more than a few minutes old. Also sent:
`X-Heyloyalty-Event` (the type) and `X-Heyloyalty-Delivery` (the delivery's id in the log).
"""

PHP_EXAMPLE = OpenApiExample(
    "PHP client",
    value={
        "url": "https://shop.example.com/hooks/heyloyalty",
        "contact_email": "dev@shop.example.com",
        "webhookTriggers": {**dict.fromkeys(WebhookEvent.values, 0), "0": "subscribe"},
    },
    request_only=True,
)


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    tz = webhook.list.timezone
    return {
        "id": webhook.pk,
        "list_id": webhook.list_id,
        "url": webhook.url,
        "contact_email": webhook.contact_email,
        "active": webhook.active,
        "webhookTriggers": {e: int(e in webhook.events) for e in WebhookEvent.values},
        "events": list(webhook.events),
        "failures_in_row": webhook.failures_in_row,
        "disabled_at": stamp(webhook.disabled_at, tz),
        "disabled_reason": webhook.disabled_reason or None,
        "created_at": stamp(webhook.created_at, tz),
        "updated_at": stamp(webhook.updated_at, tz),
    }


def delivery_json(delivery: WebhookDelivery, tz: str) -> dict[str, Any]:
    pending = delivery.status == WebhookDeliveryStatus.PENDING
    return {
        "id": delivery.pk,
        "event": delivery.event,
        "status": delivery.status,
        "member_id": str(delivery.member_id) if delivery.member_id else None,
        "attempts": delivery.attempts,
        "next_attempt_at": stamp(delivery.next_attempt_at, tz) if pending else None,
        "response_status": delivery.response_status,
        "response_body": delivery.response_body or None,
        "error": delivery.error or None,
        "duration_ms": delivery.duration_ms,
        "replay_of": delivery.replay_of,
        "created_at": stamp(delivery.created_at, tz),
        "delivered_at": stamp(delivery.delivered_at, tz),
        "payload": delivery.payload,
    }


def _enabled(raw: Any) -> list[str]:
    """The enabled trigger names, whatever the encoding (§5.6): names under numeric keys,
    named keys with a true value, or a plain list. A named key with a false value is
    ignored even when the name is unknown, so a newer client listing more names at 0
    still works."""
    if isinstance(raw, str) and "," in raw:
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, dict):
        names = []
        for key, value in raw.items():
            if str(key).isdigit():
                names.append(value)
            elif to_bool(value, field=f"webhookTriggers[{key}]"):
                names.append(key)
    else:
        names = to_list(raw)
    if not all(isinstance(name, str) for name in names):
        raise ParamError("webhookTriggers must name triggers", field="webhookTriggers")
    return [name.strip() for name in names]


def _events(params: Params) -> list[str] | None:
    for key in ("webhookTriggers", "events"):
        if key in params:
            return _enabled(params[key])
    return None


def _text(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParamError(f"{name} must be a single text value", field=name)
    return value


def _active(params: Params) -> bool | None:
    return to_bool(params["active"], field="active") if "active" in params else None


class WebhooksView(ApiView):
    def _list(self, request: Request, list_id: str) -> List:
        return selectors.list_get(account=self.account(request), list_id=list_id)

    @extend_schema(
        operation_id="webhooks_index",
        summary="A list's webhooks",
        responses={200: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str) -> Response:
        member_list = self._list(request, list_id)
        found = selectors.webhooks_for_list(member_list=member_list)
        return Response([webhook_json(w) for w in found])

    @extend_schema(
        operation_id="webhooks_create",
        summary="Subscribe a URL to a list's events",
        description=WEBHOOK_DESCRIPTION,
        request={"multipart/form-data": JSON, "application/json": JSON},
        examples=[PHP_EXAMPLE],
        responses={201: JSON, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str) -> Response:
        member_list = self._list(request, list_id)
        params = self.params(request)
        webhook, secret = webhooks.webhook_create(
            member_list=member_list,
            url=_text(params, "url") or "",
            events=_events(params) or [],
            contact_email=_text(params, "contact_email") or "",
            active=_active(params) is not False,
        )
        return Response({"id": webhook.pk, "secret": secret}, status=201)


class WebhookDetailView(ApiView):
    def _webhook(self, request: Request, list_id: str, webhook_id: str) -> Webhook:
        member_list = selectors.list_get(account=self.account(request), list_id=list_id)
        return selectors.webhook_get(member_list=member_list, webhook_id=webhook_id)

    @extend_schema(
        operation_id="webhooks_read",
        summary="A webhook (our addition; the secret is never shown again)",
        responses={200: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str, webhook_id: str) -> Response:
        return Response(webhook_json(self._webhook(request, list_id, webhook_id)))

    @extend_schema(
        operation_id="webhooks_update",
        summary="Change a webhook; what is sent is replaced, the secret stays",
        description=WEBHOOK_DESCRIPTION,
        request={"application/x-www-form-urlencoded": JSON, "application/json": JSON},
        examples=[PHP_EXAMPLE],
        responses={204: None, 400: JSON, 404: JSON},
    )
    def put(self, request: Request, list_id: str, webhook_id: str) -> Response:
        webhook = self._webhook(request, list_id, webhook_id)
        params = self.params(request)
        webhooks.webhook_update(
            webhook=webhook,
            url=_text(params, "url"),
            events=_events(params),
            contact_email=_text(params, "contact_email"),
            active=_active(params),
        )
        return Response(status=204)

    @extend_schema(
        operation_id="webhooks_delete",
        summary="Delete a webhook",
        responses={204: None, 404: JSON},
    )
    def delete(self, request: Request, list_id: str, webhook_id: str) -> Response:
        webhooks.webhook_delete(webhook=self._webhook(request, list_id, webhook_id))
        return Response(status=204)


MAX_PERPAGE = 500


def _webhook(view: ApiView, request: Request, list_id: str, webhook_id: str) -> Webhook:
    member_list = selectors.list_get(account=view.account(request), list_id=list_id)
    return selectors.webhook_get(member_list=member_list, webhook_id=webhook_id)


class WebhookDeliveriesView(ApiView):
    @extend_schema(
        operation_id="webhooks_deliveries",
        summary="A webhook's delivery log, newest first, paged (our addition)",
        description="Each delivery: `{id, event, status (pending, delivered, failed), "
        "member_id, attempts, next_attempt_at, response_status, response_body (the first "
        "1000 characters), error, duration_ms, replay_of, created_at, delivered_at, "
        "payload}`. `payload` is the body as sent, without its `signature` (computed "
        "when sent). Finished deliveries stay in the log for WEBHOOK_LOG_DAYS (30).",
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("perpage", int, description=f"1 to {MAX_PERPAGE}, default 50"),
            OpenApiParameter("status", str, enum=WebhookDeliveryStatus.values),
        ],
        responses={200: JSON, 400: JSON, 404: JSON},
    )
    def get(self, request: Request, list_id: str, webhook_id: str) -> Response:
        webhook = _webhook(self, request, list_id, webhook_id)
        params = self.params(request)
        page = max(1, to_int(params.get("page", 1), field="page"))
        perpage = to_int(params.get("perpage", 50), field="perpage")
        if not 1 <= perpage <= MAX_PERPAGE:
            raise ParamError(f"perpage must be between 1 and {MAX_PERPAGE}", field="perpage")
        status = str(params.get("status") or "")
        if status and status not in WebhookDeliveryStatus.values:
            allowed = ", ".join(WebhookDeliveryStatus.values)
            raise ParamError(f"status must be one of {allowed}", field="status")
        found = webhook_delivery.webhook_deliveries(webhook=webhook, status=status or None)
        start = (page - 1) * perpage
        tz = webhook.list.timezone
        return Response(
            {
                "deliveries": [delivery_json(d, tz) for d in found[start : start + perpage]],
                "total": found.count(),
                "page": page,
                "perpage": perpage,
            }
        )


class WebhookReplayView(ApiView):
    @extend_schema(
        operation_id="webhooks_delivery_replay",
        summary="Send a delivery from the log again (our addition)",
        description="A new delivery with the same event and payload, signed anew, queued "
        "behind any that wait. Answers 202 `{id, status, replay_of}`; 400 while the webhook "
        "is switched off.",
        request=None,
        responses={202: JSON, 400: JSON, 404: JSON},
    )
    def post(self, request: Request, list_id: str, webhook_id: str, delivery_id: str) -> Response:
        webhook = _webhook(self, request, list_id, webhook_id)
        delivery = webhook_delivery.webhook_delivery_get(webhook=webhook, delivery_id=delivery_id)
        copy = webhooks.webhook_delivery_replay(delivery=delivery)
        return Response(
            {"id": copy.pk, "status": copy.status, "replay_of": delivery.pk}, status=202
        )
