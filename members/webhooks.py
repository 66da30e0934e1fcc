"""Every write to a list's webhooks (heyloyalty-api.md §5.6, §8).

Where a customer may point the server (never at our own network), the signing secret
(made once, shown once, kept encrypted), switching a webhook on and off, and replaying a
delivery from its log. Emitting and sending are in members/webhook_delivery.py.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from heyloyalty import keys
from members.fields import FieldValueError, clean_email
from members.models import List, Webhook, WebhookDelivery, WebhookEvent
from members.services import MemberError
from members.webhook_delivery import webhook_resume, webhooks_changed, webhooks_queue_send

URL_MAX = 2000
MAX_WEBHOOKS_PER_LIST = 25
# Names that only ever mean a machine on our side of the network.
LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_is_public(address: IPAddress) -> bool:
    """Whether a webhook may go to this address: not loopback, private, link-local (the
    cloud metadata service at 169.254.169.254), shared, reserved or multicast, also when
    an IPv4 address hides inside an IPv6 one. Delivery checks the address it connects to
    with this too, because a name can resolve to anything, and change."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not address_is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def webhook_url_check(url: str) -> str:
    """The URL, if the server may POST to it; else ``MemberError("url", why)``.

    Only http(s), no credentials in the URL (they would sit in plain text at rest), and a
    public host: an internal one would let a customer make the server call our own
    services (the database, Redis, the cloud metadata service). WEBHOOK_ALLOW_PRIVATE
    (development and tests) lets a local host through.
    """
    text = url.strip()
    if len(text) > URL_MAX:
        raise MemberError("url", f"the url is longer than {URL_MAX} characters")
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        raise MemberError("url", "the url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise MemberError("url", "the url must be a complete http:// or https:// URL")
    if "@" in parts.netloc:
        raise MemberError("url", "the url must not carry a user name or password")
    if _host_is_local(host) and not settings.WEBHOOK_ALLOW_PRIVATE:
        raise MemberError("url", f"{host} is a private or local address; use a public one")
    try:
        URLValidator(schemes=["http", "https"])(text)
    except ValidationError:
        raise MemberError("url", "the url is not a valid URL") from None
    return text


def _host_is_local(host: str) -> bool:
    """IP literals by their address (also shorthands such as ``127.1``, which resolvers
    accept); names that only mean a machine on our side: ``localhost``, local suffixes,
    and single labels such as ``redis`` (service names in docker compose)."""
    try:
        return not address_is_public(ipaddress.ip_address(host))
    except ValueError:
        pass
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        try:
            return not address_is_public(ipaddress.IPv4Address(socket.inet_aton(host)))
        except OSError:
            return False  # not an address at all; URLValidator refuses it
    return "." not in host or host == "localhost" or host.endswith(LOCAL_SUFFIXES)


def webhook_events_check(events: Iterable[str]) -> list[str]:
    """The events, deduplicated in the order of §8; an unknown name is an error."""
    wanted = set()
    for event in events:
        if event not in WebhookEvent.values:
            raise MemberError(
                "webhookTriggers",
                f"{event!r} is not a webhook trigger (use {', '.join(WebhookEvent.values)})",
            )
        wanted.add(event)
    return [event for event in WebhookEvent.values if event in wanted]


def _contact(email: str) -> str:
    try:
        return clean_email(email)
    except FieldValueError:
        raise MemberError("contact_email", f"{email!r} is not an email address") from None


@transaction.atomic
def webhook_create(
    *,
    member_list: List,
    url: str,
    events: Iterable[str],
    contact_email: str = "",
    active: bool = True,
) -> tuple[Webhook, str]:
    """A new webhook; returns it with its signing secret, shown this once."""
    url = webhook_url_check(url)
    checked = webhook_events_check(events)
    contact = _contact(contact_email)
    # Lock the list so two concurrent creates cannot both pass the limit.
    List.objects.select_for_update().filter(pk=member_list.pk).first()
    if Webhook.objects.filter(list=member_list).count() >= MAX_WEBHOOKS_PER_LIST:
        raise MemberError("url", f"a list has at most {MAX_WEBHOOKS_PER_LIST} webhooks")
    secret = secrets.token_hex(32)
    webhook = Webhook.objects.create(
        list=member_list,
        url=url,
        events=checked,
        contact_email=contact,
        active=active,
        secret_encrypted=keys.encrypt(secret),
    )
    _changed(member_list.account_id)
    return webhook, secret


def _changed(account_id: int) -> None:
    """Writers of events in this process see the change now; others within seconds
    (webhook_delivery.LOOKUP_SECONDS). Again after commit, in case a writer looked in
    between and kept the old state."""
    webhooks_changed(account_id=account_id)
    transaction.on_commit(lambda: webhooks_changed(account_id=account_id))


@transaction.atomic
def webhook_update(
    *,
    webhook: Webhook,
    url: str | None = None,
    events: Iterable[str] | None = None,
    contact_email: str | None = None,
    active: bool | None = None,
) -> Webhook:
    """Change what is given; the secret stays. Switching on a webhook that was switched off
    (by hand, or for failing) clears the failures and sends its waiting deliveries."""
    fields = ["updated_at"]
    if url is not None:
        webhook.url = webhook_url_check(url)
        fields.append("url")
    if events is not None:
        webhook.events = webhook_events_check(events)
        fields.append("events")
    if contact_email is not None:
        webhook.contact_email = _contact(contact_email)
        fields.append("contact_email")
    resume = bool(active) and (not webhook.active or webhook.disabled_at is not None)
    if active is not None:
        webhook.active = active
        fields.append("active")
    if resume:
        webhook.failures_in_row = 0
        webhook.disabled_at = None
        webhook.disabled_reason = ""
        fields += ["failures_in_row", "disabled_at", "disabled_reason"]
    webhook.save(update_fields=fields)
    if resume:
        webhook_resume(webhook=webhook)
    _changed(webhook.list.account_id)
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    account_id = webhook.list.account_id
    webhook.delete()  # its log with it, in one DELETE (nothing refers to a delivery)
    _changed(account_id)


@transaction.atomic
def webhook_delivery_replay(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery from the log again: a new delivery with the same event and payload
    (signed anew, with the same secret), queued behind any waiting ones."""
    webhook = delivery.webhook
    if not webhook.active:
        raise MemberError("webhook", "the webhook is switched off; switch it on to replay")
    copy = WebhookDelivery.objects.create(
        webhook=webhook,
        event=delivery.event,
        member_id=delivery.member_id,
        payload=delivery.payload,
        replay_of=delivery.pk,
        created_at=timezone.now(),
    )
    webhooks_queue_send([webhook.pk])
    return copy


def webhook_secret(*, webhook: Webhook) -> str:
    """The signing secret (the HMAC header and the body's md5 signature)."""
    return keys.decrypt(webhook.secret_encrypted)
