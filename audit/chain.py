"""The canonical serialization and hash of an audit event (see audit/models.py).

Each value enters the hash as PostgreSQL's text form of it, so that the function that
writes the row (``audit_append``, migration 0002) and the verifier (audit/verify.py)
hash the very same characters: ``TEXT_COLUMNS`` is the SQL that reads those forms, and
``canonical`` joins them, each prefixed with its length, so no value can be mistaken for
two or two for one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

# The order in which the values are hashed; ``prev_hash`` comes last.
FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor_email",
    "actor_role",
    "account_id",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "path",
    "method",
    "status",
    "ip",
    "user_agent",
    "grant_id",
    "reason",
    "extra",
    "prev_hash",
)

AT_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'  # to_char of ``at AT TIME ZONE 'UTC'``

# Each field as the text that is hashed (NULL stays NULL).
_TEXT_OF = {
    "seq": "seq::text",
    "at": f"to_char(at AT TIME ZONE 'UTC', '{AT_FORMAT}')",
    "actor_id": "actor_id::text",
    "account_id": "account_id::text",
    "status": "status::text",
    "ip": "host(ip)",
    "grant_id": "grant_id::text",
    "extra": "extra::text",
}
TEXT_COLUMNS = ", ".join(_TEXT_OF.get(name, name) for name in FIELDS)


def canonical(texts: Sequence[str | None]) -> str:
    """``len:value;`` for each value in the order of FIELDS, ``-;`` for NULL.

    For example ``1:7;24:2026-11-27T00:10:00.000000Z;-;…``. The length is in characters
    (PostgreSQL's ``length``); the string is hashed as UTF-8.
    """
    return "".join("-;" if t is None else f"{len(t)}:{t};" for t in texts)


def digest(texts: Sequence[str | None]) -> str:
    """SHA-256 of the canonical serialization, lower-case hex."""
    return hashlib.sha256(canonical(texts).encode()).hexdigest()


def at_text(moment: datetime) -> str:
    """A time as ``AT_FORMAT`` writes it: UTC, microseconds, a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain(value: Any) -> Any:
    """``extra`` made of JSON types: dates, decimals, UUIDs and other objects become
    text, as do floats JSON cannot hold (NaN, infinities); NUL characters, which
    PostgreSQL cannot store, are dropped."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {str(k).replace("\x00", ""): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [plain(v) for v in items]
    if isinstance(value, datetime):
        return at_text(value) if value.tzinfo else value.isoformat()
    return str(value).replace("\x00", "")
