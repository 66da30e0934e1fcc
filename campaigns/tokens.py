"""Short signed tokens carried by the links in a message: open pixel, tracked link,
unsubscribe, and the VERP bounce address.

A token is the lower-case base32 of a small binary payload and the first 12 bytes of its
HMAC-SHA256 under SECRET_KEY: base32, because a token also travels in the local part of
an address (VERP bounces, the mailto unsubscribe), which mail servers may fold to one
case. Tokens signed with a key in SECRET_KEY_FALLBACKS still
verify, so rotating the secret key does not break links already mailed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import struct
import uuid
from dataclasses import dataclass
from hashlib import sha256

from django.conf import settings

SIG_BYTES = 12

# One-byte kinds: a token of one kind never verifies as another.
OPEN = b"o"
CLICK = b"c"
UNSUBSCRIBE = b"u"
BOUNCE = b"b"


@functools.lru_cache(maxsize=16)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC with the key already taken in: every message of a send signs three tokens."""
    key = sha256(b"heyloyalty.campaigns.tokens" + secret.encode()).digest()
    return hmac.new(key, digestmod=sha256)


def _mac(secret: str, kind: bytes, payload: bytes) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(kind + payload)
    return mac.digest()[:SIG_BYTES]


def encode(raw: bytes) -> str:
    return base64.b32encode(raw).rstrip(b"=").decode("ascii").lower()


def _decode(token: str) -> bytes | None:
    try:
        return base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return None


def sign(kind: bytes, payload: bytes) -> str:
    return encode(payload + _mac(settings.SECRET_KEY, kind, payload))


def unsign(kind: bytes, token: str) -> bytes | None:
    """The payload, or None for a token that is malformed or not ours."""
    raw = _decode(token) if len(token) <= 200 else None
    if raw is None or len(raw) <= SIG_BYTES:
        return None
    payload, signature = raw[:-SIG_BYTES], raw[-SIG_BYTES:]
    for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]:
        if hmac.compare_digest(signature, _mac(secret, kind, payload)):
            return payload
    return None


# Delivery-level tokens: the delivery id names campaign, member and address at once.


def open_token(delivery_id: int) -> str:
    return sign(OPEN, struct.pack(">Q", delivery_id))


def open_read(token: str) -> int | None:
    payload = unsign(OPEN, token)
    if payload is None or len(payload) != 8:
        return None
    return int(struct.unpack(">Q", payload)[0])


def click_token(delivery_id: int, position: int) -> str:
    return sign(CLICK, struct.pack(">QH", delivery_id, position))


def click_read(token: str) -> tuple[int, int] | None:
    payload = unsign(CLICK, token)
    if payload is None or len(payload) != 10:
        return None
    delivery_id, position = struct.unpack(">QH", payload)
    return int(delivery_id), int(position)


def bounce_token(delivery_id: int) -> str:
    return sign(BOUNCE, struct.pack(">Q", delivery_id))


def bounce_read(token: str) -> int | None:
    payload = unsign(BOUNCE, token)
    if payload is None or len(payload) != 8:
        return None
    return int(struct.unpack(">Q", payload)[0])


@dataclass(frozen=True)
class UnsubscribeTarget:
    member_id: uuid.UUID
    campaign_id: int | None


def unsubscribe_token(member_id: uuid.UUID | str, campaign_id: int | None = None) -> str:
    """Names the member (and the campaign it came from, for its statistics); it keeps
    working after the campaign's delivery rows are gone."""
    member = uuid.UUID(str(member_id)).bytes
    return sign(UNSUBSCRIBE, member + struct.pack(">Q", campaign_id or 0))


def unsubscribe_read(token: str) -> UnsubscribeTarget | None:
    payload = unsign(UNSUBSCRIBE, token)
    if payload is None or len(payload) != 24:
        return None
    campaign_id = int(struct.unpack(">Q", payload[16:])[0])
    return UnsubscribeTarget(uuid.UUID(bytes=payload[:16]), campaign_id or None)
