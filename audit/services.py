"""The one function that writes audit events.

``record`` runs inside the caller's transaction (or its own, when there is none), so an
action and its event commit or roll back together. The chain is kept consistent under
concurrency by the database function ``audit_append`` (migration 0002), which takes a
transaction-level advisory lock, reads the last row, takes the next ``seq`` and links
to its hash; the lock is released when the writer's transaction ends, and the next
writer then sees the new row. ``seq`` therefore has no gaps: a rolled-back transaction
takes its row with it. Should a writer ever read a stale head (a caller in REPEATABLE
READ), the primary key on ``seq`` refuses its insert rather than fork the chain.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from django.db import connection, models
from django.http import HttpRequest

from audit import chain
from audit.models import AuditEvent
from heyloyalty.net import client_ip

if TYPE_CHECKING:
    from accounts.models import Account, User

_LENGTHS = {
    f.name: f.max_length
    for f in AuditEvent._meta.get_fields()
    if isinstance(f, models.CharField) and f.max_length
}


def _text(name: str, value: object) -> str:
    """Text as PostgreSQL keeps it: no NUL characters, cut to the column's length."""
    text = str(value or "").replace("\x00", "")
    limit = _LENGTHS.get(name)
    return text[:limit] if limit else text


def _pk(value: Any) -> int | None:
    if value is None:
        return None
    return int(value.pk if isinstance(value, models.Model) else value)


def _actor(actor: User | None, request: HttpRequest | None) -> tuple[int | None, str, str]:
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    if actor is not None:
        return actor.pk, actor.email, actor.role
    return None, "", "anonymous" if request is not None else "system"


def _account_of(target: models.Model | None) -> int | None:
    if target is None:
        return None
    if target._meta.label_lower == "accounts.account":
        return int(target.pk)
    account_id = getattr(target, "account_id", None)
    return int(account_id) if account_id is not None else None


def record(
    action: str,
    *,
    actor: User | None = None,
    account: Account | int | None = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_repr: str = "",
    request: HttpRequest | None = None,
    status: int | None = None,
    grant: Any = None,
    reason: str = "",
    extra: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one event, linked to the chain, in the caller's transaction.

    1. The actor is ``actor``, else the request's signed-in user, else "anonymous"
       (a request) or "system" (no request: a task or a command).
    2. The account is ``account``, else the target's account (the target itself when
       it is an Account).
    3. Path, method, client IP and user agent come from ``request``, and the grant
       from its sign-in-as session when ``grant`` is not given and the event is about
       the account of that session.
    4. ``audit_append``, under the chain lock, gives the time and the sequence number,
       links the row to the one before, hashes and inserts it.
    """
    actor_id, actor_email, actor_role = _actor(actor, request)
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)
    account_id = _pk(account) if account is not None else _account_of(target)
    acting = getattr(request, "acting_account", None)
    if grant is None and acting is not None and acting.pk == account_id:
        grant = getattr(request, "acting_grant", None)  # working on the customer's behalf
    ip = client_ip(request) if request is not None else None
    event = AuditEvent(
        actor_id=actor_id,
        actor_email=_text("actor_email", actor_email),
        actor_role=_text("actor_role", actor_role),
        account_id=account_id,
        action=_text("action", action),
        target_type=_text("target_type", target_type),
        target_id=_text("target_id", target_id),
        target_repr=_text("target_repr", target_repr),
        path=_text("path", request.get_full_path() if request is not None else ""),
        method=_text("method", request.method if request is not None else ""),
        status=status,
        user_agent=_text(
            "user_agent", request.META.get("HTTP_USER_AGENT", "") if request is not None else ""
        ),
        grant_id=_pk(grant),
        reason=str(reason or "").replace("\x00", ""),
        extra=chain.plain(extra or {}),
    )
    _append(event, _valid_ip(ip))
    if request is not None:
        # The audit middleware then logs no second event for this request.
        request._audit_recorded = True  # type: ignore[attr-defined]
    return event


_APPEND = (
    "SELECT o_seq, o_at, o_ip, o_prev_hash, o_hash FROM audit_append("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::smallint, %s::inet, %s, %s, %s, %s::jsonb)"
)


def _append(event: AuditEvent, ip: str | None) -> None:
    """Insert the event through ``audit_append`` (migration 0002), which links and hashes
    it under the chain lock: one round trip, in the caller's transaction or, without
    one, in the statement's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            _APPEND,
            [
                event.actor_id,
                event.actor_email,
                event.actor_role,
                event.account_id,
                event.action,
                event.target_type,
                event.target_id,
                event.target_repr,
                event.path,
                event.method,
                event.status,
                ip,
                event.user_agent,
                event.grant_id,
                event.reason,
                json.dumps(event.extra),
            ],
        )
        event.seq, event.at, event.ip, event.prev_hash, event.hash = cursor.fetchone()
    event._state.adding = False
    event._state.db = connection.alias


def _valid_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None
