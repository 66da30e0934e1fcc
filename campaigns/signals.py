"""ESP tracking webhooks: django-anymail turns each ESP's payload into an
AnymailTrackingEvent and sends its ``tracking`` signal; this receiver turns bounces,
complaints and unsubscribes into member statuses (connected in CampaignsConfig.ready).

The webhook URLs are /anymail/<esp>/tracking/, guarded by ANYMAIL_WEBHOOK_SECRET.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from anymail.signals import EventType, RejectReason  # type: ignore[import-untyped]

from campaigns.bounces import bounce_record
from campaigns.models import BounceKind, Delivery
from campaigns.unsubscribe import member_unsubscribe

log = logging.getLogger(__name__)

UNSUBSCRIBE = "unsubscribe"

# How ESPs that anymail reports as "bounced" say that the failure was temporary: a value
# of one of these keys anywhere in the raw event (Postmark's Type, SES's bounceType,
# Brevo's and Mandrill's event, MailerSend's type, Resend's bounce type, Mailgun's severity).
_SOFT_KEYS = {"type", "event", "bouncetype", "bounce_type", "severity"}
_SOFT_VALUES = {
    "softbounce",
    "soft_bounce",
    "soft_bounced",
    "soft bounce",
    "transient",
    "temporary",
}
# The first SMTP status in a relay's answer: "smtp;452 4.2.2 Mailbox full", "550-5.1.1 …".
_SMTP_STATUS = re.compile(r"(?:^|[\s;])([245])(?:\.\d{1,3}\.\d{1,3}|\d\d)(?=[\s\-:;,]|$)")
_DELIVERY_TAG = re.compile(r"^delivery(?:_id)?[:=-](\d{1,18})$")

# Rejects that speak about the recipient; the others (the ESP's policy, our unverified
# sender) say nothing about the address and are recorded as soft.
_REJECT_KIND = {
    RejectReason.INVALID: BounceKind.HARD,
    RejectReason.BOUNCED: BounceKind.HARD,
    RejectReason.TIMED_OUT: BounceKind.HARD,
    RejectReason.SPAM: BounceKind.COMPLAINT,
    RejectReason.UNSUBSCRIBED: UNSUBSCRIBE,
}


def tracking_received(sender: object, event: Any, esp_name: str, **kwargs: object) -> None:
    """anymail's ``tracking`` signal. An error here answers the ESP with 500 and it
    retries later, which is what a database outage should do."""
    action = event_action(event)
    if action is None:
        return
    delivery = delivery_for(event)
    if delivery is None:
        log.info("%s %s event for %r matches no delivery", esp_name, action, event.recipient)
        return
    source = esp_name.lower()
    if action == UNSUBSCRIBE:
        if delivery.member is not None:
            member_unsubscribe(
                member=delivery.member, campaign_id=delivery.campaign_id, source=source
            )
        return
    bounce_record(
        account=delivery.campaign.account,
        email=delivery.email,
        kind=action,
        source=source,
        reason=str(event.mta_response or event.description or "")[:2000],
        delivery=delivery,
    )


def event_action(event: Any) -> BounceKind | str | None:
    """A BounceKind, UNSUBSCRIBE, or None for events that change nothing."""
    if event.event_type == EventType.BOUNCED:
        return BounceKind.SOFT if _is_soft(event) else BounceKind.HARD
    if event.event_type == EventType.REJECTED:
        return _REJECT_KIND.get(event.reject_reason, BounceKind.SOFT)
    if event.event_type == EventType.COMPLAINED:
        return BounceKind.COMPLAINT
    if event.event_type == EventType.UNSUBSCRIBED:
        return UNSUBSCRIBE
    return None


def _is_soft(event: Any) -> bool:
    """The ESP's own word first (it has seen the retries), then the relay's status."""
    if any(v in _SOFT_VALUES for v in _values(event.esp_event, _SOFT_KEYS, depth=3)):
        return True
    if str(event.description or "").lower().startswith("transient"):  # Amazon SES
        return True
    status = _SMTP_STATUS.search(str(event.mta_response or ""))
    return status is not None and status.group(1) == "4"


def _values(raw: object, keys: set[str], depth: int) -> Iterable[str]:
    """Lower-cased values of ``keys`` in nested mappings ("activity.soft_bounced" gives
    "soft_bounced")."""
    if depth <= 0 or not isinstance(raw, Mapping):
        return
    for key, value in raw.items():
        if isinstance(value, Mapping):
            yield from _values(value, keys, depth - 1)
        elif str(key).lower() in keys and isinstance(value, str):
            yield value.lower().rsplit(".", 1)[-1]


def _delivery_id(metadata: object, tags: object) -> int | None:
    """The pipeline sends anymail metadata ``delivery_id``; a tag ``delivery:<id>`` also
    works for ESPs that carry tags but no metadata."""
    if isinstance(metadata, Mapping):
        value = str(metadata.get("delivery_id") or "").strip()
        if value.isdigit() and len(value) <= 18:
            return int(value)
    for tag in tags if isinstance(tags, list | tuple) else ():
        match = _DELIVERY_TAG.match(str(tag))
        if match:
            return int(match.group(1))
    return None


def delivery_for(event: Any) -> Delivery | None:
    """The delivery the event is about: named by its metadata or tags when the address
    agrees, else the latest delivery to the address (without a delivery there is no
    account to charge the event to)."""
    recipient = str(event.recipient or "").strip().lower()
    deliveries = Delivery.objects.select_related("campaign__account", "member__list")
    delivery_id = _delivery_id(event.metadata, event.tags)
    if delivery_id is not None:
        found = deliveries.filter(pk=delivery_id).first()
        if found is not None and (not recipient or found.email.lower() == recipient):
            return found
    if not recipient:
        return None
    return deliveries.filter(email=recipient).order_by("-id").first()
