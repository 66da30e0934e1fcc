"""Webhook subscriptions in the Heyloyalty API (heyloyalty-api.md §5.6, H1 to H4).

The PHP client (``HLWebhooks``) posts ``url``, ``contact_email`` and ``webhookTriggers``
(multipart on POST, urlencoded on PUT). Webhooks are stored now; delivery is a later
issue. Every list is looked up through the calling key's account and every webhook
through its list, so another account's ids answer 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from heyloyalty.api.base import ApiView
from heyloyalty.api.params import ParamError, Params, to_bool, to_list
from members import selectors, webhooks
from members.models import List, Webhook, WebhookEvent
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
events, created_at, updated_at}}`. Create answers 201 `{{id, secret}}`: the secret that
will sign deliveries (HMAC), shown only this once.
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
        "created_at": stamp(webhook.created_at, tz),
        "updated_at": stamp(webhook.updated_at, tz),
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
