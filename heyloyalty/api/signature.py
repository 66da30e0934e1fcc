"""Heyloyalty request signatures (spec §2): what clients send and how the server checks it.

Every client signs the raw ``X-Request-Timestamp`` value with HMAC-SHA256 keyed by the API
secret, hex-encodes it, base64-encodes the hex and sends that as the Basic password under the
API key. This module is pure (no database, no Django) so the HTTP layer, tests and benchmarks
can share it; the caller looks secrets up, logs ``SignatureError.reason`` and answers 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = [
    "SignatureError",
    "expected_signature",
    "parse_basic",
    "parse_timestamp",
    "sign",
    "verify",
]

# HMAC'd when the key is unknown, so an unknown key costs the same as a bad signature and
# response timing does not reveal which keys exist. Random per process: it must never verify.
_DUMMY_SECRET = secrets.token_hex(32)

# [wp] v1.0-1.1.0 glue "GMT" to the seconds (`gmDate(...) . 'GMT'`); email.utils rejects that.
_GLUED_GMT = re.compile(r"(?<=\d)(GMT)\s*$", re.IGNORECASE)

# datetime.fromisoformat also takes bare dates and compact forms; a request timestamp without
# a time of day is not something any client sends, so do not let it through as midnight.
_ISO_WITH_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


class SignatureError(Exception):
    """Authentication failed; ``reason`` is for logs only, clients just get a plain 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64decode(data: str) -> bytes:
    """Strict-alphabet base64 that tolerates missing padding (some hand-built headers drop it)."""
    raw = data.encode("ascii")  # UnicodeEncodeError is a ValueError
    return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)


def parse_basic(authorization: str) -> tuple[str, str]:
    """Split a ``Basic`` Authorization header into ``(api_key, P)``.

    Split at the first ``:`` only: RFC 7617 usernames cannot hold a colon but passwords can.
    """
    parts = authorization.strip().split(None, 1)
    if not parts or parts[0].lower() != "basic":
        raise SignatureError("not_basic")
    if len(parts) != 2:
        raise SignatureError("malformed")
    try:
        decoded = _b64decode(parts[1].strip()).decode("utf-8")
    except (ValueError, binascii.Error) as exc:
        raise SignatureError("malformed") from exc
    api_key, colon, password = decoded.partition(":")
    if not colon or not api_key:
        raise SignatureError("malformed")
    return api_key, password


def parse_timestamp(raw: str) -> datetime:
    """Parse any timestamp format clients send (§2.2) into an aware UTC datetime.

    Only for the clock check: the signature covers the raw header string, never this value.
    """
    text = raw.strip()
    parsed: datetime | None = None
    try:
        parsed = parsedate_to_datetime(_GLUED_GMT.sub(r" \1", text))
    except (ValueError, TypeError, IndexError, OverflowError):
        if _ISO_WITH_TIME.match(text):
            # Python 3.11 reads "Z" itself but not a lowercase "z"; map both.
            iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
            try:
                parsed = datetime.fromisoformat(iso)
            except ValueError:
                parsed = None
    if parsed is None:
        raise SignatureError("bad_timestamp")
    if parsed.tzinfo is None:
        # RFC 5322 "-0000" and offset-less ISO strings: every client sends UTC.
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. year 1 with a positive offset
        raise SignatureError("bad_timestamp") from exc


def _digest(secret: str, timestamp: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(secret: str, timestamp: str) -> str:
    """Lowercase hex HMAC-SHA256 of the raw timestamp, as PHP's ``hash_hmac`` returns it."""
    return _digest(secret, timestamp).hex()


def sign(api_key: str, secret: str, timestamp: str) -> dict[str, str]:
    """Build the two headers exactly as [php] ``HLBase::setSignature`` does (client side).

    Note that P is base64 of the 64 hex characters, not of the raw digest.
    """
    password = base64.b64encode(expected_signature(secret, timestamp).encode("ascii"))
    credentials = base64.b64encode(api_key.encode("utf-8") + b":" + password)
    return {
        "Authorization": "Basic " + credentials.decode("ascii"),
        "X-Request-Timestamp": timestamp,
    }


def verify(
    *,
    authorization: str | None,
    timestamp: str | None,
    secret_for_key: Callable[[str], str | None],
    now: datetime,
    window: timedelta,
) -> str:
    """Check a signed request (§2.3 steps 1-5) and return its API key.

    Raises SignatureError on any failure. There is deliberately no nonce/replay check: [php]
    reuses one timestamp and signature for the whole life of a service object (§2.3 point 5).
    ``secret_for_key`` is called exactly once, whatever happens after header parsing, and its
    own timing for unknown keys is the caller's responsibility.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not authorization or not authorization.strip():
        raise SignatureError("missing_authorization")
    api_key, password = parse_basic(authorization)
    if not timestamp or not timestamp.strip():
        raise SignatureError("missing_timestamp")

    try:
        presented = _b64decode(password)
    except (ValueError, binascii.Error):
        presented = b""  # still do the full work below: fail as bad_signature, same timing

    secret = secret_for_key(api_key)
    # An empty secret is as good as none: anyone could compute that HMAC.
    known = bool(secret)
    digest = _digest(secret if secret else _DUMMY_SECRET, timestamp)
    hex_ok = hmac.compare_digest(presented.lower(), digest.hex().encode("ascii"))
    raw_ok = hmac.compare_digest(presented, digest)  # tolerance: base64 of the raw digest
    if not known:
        raise SignatureError("unknown_key")
    if not (hex_ok | raw_ok):
        raise SignatureError("bad_signature")

    # Clock check only after the signature holds, so its reasons are logged for real clients.
    sent_at = parse_timestamp(timestamp)
    if abs(now - sent_at) > window:
        raise SignatureError("stale_timestamp")
    return api_key
