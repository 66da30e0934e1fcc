"""Consent: whether a member of our staff may work in a customer's account, and the
customer's say in it.

An account manager has standing access to an assigned account whose ``manager_access``
is ALLOWED. Where it is ASK, the manager requests access with a reason; the owners get
a mail with signed approve and deny links (valid 72 hours, usable once); an approval
opens an ``AccessGrant`` for the hours the owner chooses (at most 24), which the owner
can revoke at any time. A main admin may always enter, and is logged like everyone.

``staff_access`` is the one check; the audit middleware (audit/middleware.py) and the
sign-in-as session (accounts/acting.py) both ask it. Every write here records its audit
event in the same transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import (
    ACCESS_LINK_HOURS,
    GRANT_HOURS_CHOICES,
    GRANT_MAX_HOURS,
    AccessGrant,
    AccessRequest,
    AccessRequestStatus,
    Account,
    ManagerAccess,
    Role,
    User,
)
from audit.services import record

LINK_SALT = "accounts.consent.link"
LINK_ACTIONS = ("approve", "deny")


@dataclass(frozen=True)
class Access:
    """The answer of ``staff_access``. ``why`` is one of: "admin", "standing", "grant"
    (allowed); "not_staff", "not_assigned", "no_grant", "expired", "revoked" (refused)."""

    allowed: bool
    grant: AccessGrant | None
    why: str


class ConsentError(Exception):
    """A consent action refused, with a message for the person who tried it. ``code``
    says why (for the audit event); ``field`` names the form field at fault, if any."""

    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


def staff_access(user: User, account: Account) -> Access:
    """May this member of staff work in this account now, and under which grant?"""
    if not user.is_active or not user.is_staff:
        return Access(False, None, "not_staff")
    if user.is_superuser:
        return Access(True, None, "admin")
    if account.manager_id != user.pk:
        return Access(False, None, "not_assigned")
    if account.manager_access == ManagerAccess.ALLOWED:
        return Access(True, None, "standing")
    moment = timezone.now()
    grant = grant_active(manager=user, account=account, at=moment)
    if grant is not None:
        return Access(True, grant, "grant")
    return Access(False, None, _why_no_grant(user, account, moment))


def grant_active(
    *, manager: User, account: Account, at: datetime | None = None
) -> AccessGrant | None:
    """The manager's unrevoked, unexpired grant to the account that lasts longest."""
    return (
        AccessGrant.objects.filter(
            account=account,
            manager=manager,
            revoked_at__isnull=True,
            expires_at__gt=at or timezone.now(),
        )
        .order_by("-expires_at")
        .first()
    )


def _why_no_grant(user: User, account: Account, moment: datetime) -> str:
    """Say "revoked" or "expired" when the manager's last grant was, so the refusal
    page and the audit log tell a grant used after revocation from no grant at all."""
    last = AccessGrant.objects.filter(account=account, manager=user).order_by("-created_at").first()
    if last is None:
        return "no_grant"
    if last.revoked_at is not None:
        return "revoked"
    return "expired" if last.expires_at <= moment else "no_grant"


def refusal_message(access: Access) -> str:
    """What a refused member of staff is told."""
    return {
        "not_staff": _("Only account managers and main admins work in customer accounts."),
        "not_assigned": _("You are not the account manager of this account."),
        "revoked": _("The customer has revoked your access to this account."),
        "expired": _("Your access to this account has expired."),
    }.get(access.why, _("Working in this account needs the customer's approval."))


def request_access_url(account: Account | int) -> str:
    """Where a refused account manager asks the customer for access."""
    account_id = account.pk if isinstance(account, Account) else account
    return reverse("admin:accounts_account_request_access", args=[account_id])


def access_refused_record(
    *, user: User, account: Account, access: Access, request: HttpRequest | None = None
) -> None:
    """Log a refused attempt by staff (for pages the audit middleware does not guard)."""
    record(
        "access.refused",
        actor=user,
        account=account,
        target=account,
        request=request,
        status=403,
        reason=access.why,
    )


# -- requests --------------------------------------------------------------------------


def account_owners(account: Account) -> list[User]:
    return list(User.objects.filter(account=account, role=Role.OWNER, is_active=True))


@transaction.atomic
def access_request_create(
    *, account: Account, manager: User, reason: str, request: HttpRequest | None = None
) -> AccessRequest:
    """Ask the owners of an ASK account for access; they are mailed after commit.

    A refusal raises ``ConsentError``; one that concerns access itself (a manager not
    assigned to the account) is logged by the caller with ``access_refused_record``.
    """
    reason = reason.strip()
    if not reason:
        raise ConsentError(_("Say why you need access."), code="no_reason", field="reason")
    access = staff_access(manager, account)
    if manager.is_superuser:
        raise ConsentError(_("Main admins do not need the customer's approval."), code="admin")
    if not manager.is_manager or access.why == "not_assigned":
        raise ConsentError(refusal_message(access), code=access.why)
    if access.why == "standing":
        raise ConsentError(
            _("The customer allows you to work in this account without asking."), code="standing"
        )
    if not account_owners(account):
        raise ConsentError(_("This account has no owner who could approve."), code="no_owner")
    # One request at a time per manager and account, also when two arrive at once.
    Account.objects.select_for_update().filter(pk=account.pk).first()
    pending = access_request_pending(account=account, manager=manager)
    if pending is not None:
        raise ConsentError(
            _("You asked on %(when)s; the customer has not answered yet.")
            % {"when": timezone.localtime(pending.created_at).strftime("%Y-%m-%d %H:%M")},
            code="pending",
        )
    access_request = AccessRequest.objects.create(
        account=account, manager=manager, reason=reason, nonce=secrets.token_urlsafe(32)
    )
    record(
        "consent.requested",
        actor=manager,
        account=account,
        target=access_request,
        request=request,
        reason=reason,
    )
    from accounts.tasks import send_access_request

    transaction.on_commit(lambda: send_access_request.delay(access_request.pk))
    return access_request


def link_deadline(access_request: AccessRequest) -> datetime:
    return access_request.created_at + timedelta(hours=ACCESS_LINK_HOURS)


def access_request_pending(
    *, account: Account, manager: User | None = None
) -> AccessRequest | None:
    found = access_requests_pending(account=account)
    if manager is not None:
        found = found.filter(manager=manager)
    return found.first()


def access_requests_pending(*, account: Account) -> QuerySet[AccessRequest]:
    """Requests still waiting for an answer whose links still work, oldest first."""
    return (
        AccessRequest.objects.filter(
            account=account,
            status=AccessRequestStatus.PENDING,
            created_at__gt=timezone.now() - timedelta(hours=ACCESS_LINK_HOURS),
        )
        .select_related("manager")
        .order_by("created_at")
    )


def access_requests_expire() -> int:
    """Mark requests nobody answered within 72 hours as expired (their links stopped
    working already); returns how many. A conditional update: harmless twice."""
    return AccessRequest.objects.filter(
        status=AccessRequestStatus.PENDING,
        created_at__lte=timezone.now() - timedelta(hours=ACCESS_LINK_HOURS),
    ).update(status=AccessRequestStatus.EXPIRED, nonce="")


# -- the signed links ------------------------------------------------------------------


def link_token(access_request: AccessRequest, action: str) -> str:
    if action not in LINK_ACTIONS:
        raise ValueError(action)
    payload = {"r": access_request.pk, "n": access_request.nonce, "a": action}
    return signing.dumps(payload, salt=LINK_SALT)


def link_url(access_request: AccessRequest, action: str) -> str:
    return settings.PUBLIC_URL + reverse(
        "accounts:access_link", args=[link_token(access_request, action)]
    )


@dataclass(frozen=True)
class Link:
    """A checked link: the request and action, or why it is refused ("forged",
    "expired", "used")."""

    access_request: AccessRequest | None
    action: str
    refused: str = ""


def link_check(token: str) -> Link:
    """Read a link from the mail. Forged, older than 72 hours, or already used (the
    request was answered, here or on the dashboard) -> refused, with the reason."""
    try:
        payload = signing.loads(token, salt=LINK_SALT, max_age=timedelta(hours=ACCESS_LINK_HOURS))
    except signing.SignatureExpired:
        payload = _payload_of_expired(token)
        found = _request_of(payload)
        return Link(found, str(payload.get("a", "")), "expired")
    except signing.BadSignature:
        return Link(None, "", "forged")
    access_request = _request_of(payload)
    action = str(payload.get("a", ""))
    if access_request is None or action not in LINK_ACTIONS:
        return Link(None, "", "forged")
    if access_request.status == AccessRequestStatus.EXPIRED or (
        access_request.status == AccessRequestStatus.PENDING
        and link_deadline(access_request) <= timezone.now()
    ):
        return Link(access_request, action, "expired")
    if access_request.status != AccessRequestStatus.PENDING or not secrets.compare_digest(
        access_request.nonce, str(payload.get("n", ""))
    ):
        return Link(access_request, action, "used")
    return Link(access_request, action)


def _payload_of_expired(token: str) -> dict[str, Any]:
    """The contents of a well-signed but expired link, to log which request it named."""
    try:
        payload = signing.loads(token, salt=LINK_SALT)
    except signing.BadSignature:
        return {}
    return payload if isinstance(payload, dict) else {}


def _request_of(payload: Any) -> AccessRequest | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("r"), int):
        return None
    return (
        AccessRequest.objects.select_related("account", "manager").filter(pk=payload["r"]).first()
    )


def link_refused_record(*, link: Link, request: HttpRequest, why: str = "") -> None:
    """Log a refused link: forged, expired, used, or opened by someone not an owner."""
    found = link.access_request
    record(
        "consent.link_refused",
        account=found.account_id if found is not None else None,
        target=found,
        request=request,
        reason=why or link.refused,
        extra={"link_action": link.action} if link.action else None,
    )


# -- decisions -------------------------------------------------------------------------


def _decide(
    access_request: AccessRequest, *, by: User, status: AccessRequestStatus
) -> AccessRequest:
    """Move a pending request on, once: the nonce is emptied, so the links stop working.
    Checks that ``by`` is an owner of the account and the request can still be answered."""
    if by.role != Role.OWNER or by.account_id != access_request.account_id or not by.is_active:
        raise ConsentError(
            _("Only an owner of the account can answer this request."), code="not_owner"
        )
    locked = AccessRequest.objects.select_for_update().select_related("account", "manager")
    current = locked.get(pk=access_request.pk)
    if current.status != AccessRequestStatus.PENDING:
        raise ConsentError(_("This request has already been answered."), code="used")
    moment = timezone.now()
    if link_deadline(current) <= moment:
        raise ConsentError(
            _("This request is more than %(hours)s hours old and can no longer be answered.")
            % {"hours": ACCESS_LINK_HOURS},
            code="expired",
        )
    current.status, current.decided_at, current.decided_by, current.nonce = status, moment, by, ""
    current.save(update_fields=["status", "decided_at", "decided_by", "nonce"])
    return current


@transaction.atomic
def access_request_approve(
    *, access_request: AccessRequest, by: User, hours: int, request: HttpRequest | None = None
) -> AccessGrant:
    """An owner approves: a grant for ``hours`` (1 to 24) opens access now."""
    if hours not in GRANT_HOURS_CHOICES or hours > GRANT_MAX_HOURS:
        raise ConsentError(
            _("Choose how long access lasts: 1, 4, 8 or 24 hours."), code="hours", field="hours"
        )
    account = access_request.account
    manager = access_request.manager
    if account.manager_id != manager.pk or not manager.is_active:
        # Reassigned since asking: the grant would open nothing, so refuse it plainly.
        raise ConsentError(
            _("%(manager)s is no longer the account manager of this account.")
            % {"manager": manager.get_full_name()},
            code="not_assigned",
        )
    decided = _decide(access_request, by=by, status=AccessRequestStatus.APPROVED)
    moment = decided.decided_at or timezone.now()
    grant = AccessGrant.objects.create(
        account=account,
        manager=manager,
        request=decided,
        created_at=moment,
        expires_at=moment + timedelta(hours=hours),
    )
    record(
        "consent.approved",
        actor=by,
        account=account,
        target=decided,
        request=request,
        grant=grant,
        reason=decided.reason,
        extra={
            "hours": hours,
            "manager": manager.email,
            "expires_at": grant.expires_at.isoformat(),
        },
    )
    return grant


@transaction.atomic
def access_request_deny(
    *, access_request: AccessRequest, by: User, request: HttpRequest | None = None
) -> AccessRequest:
    decided = _decide(access_request, by=by, status=AccessRequestStatus.DENIED)
    record(
        "consent.denied",
        actor=by,
        account=decided.account,
        target=decided,
        request=request,
        reason=decided.reason,
        extra={"manager": decided.manager.email},
    )
    return decided


@transaction.atomic
def access_grant_revoke(
    *, grant: AccessGrant, by: User, request: HttpRequest | None = None
) -> bool:
    """End a grant now. False when it had already ended (revoked or expired)."""
    moment = timezone.now()
    revoked = AccessGrant.objects.filter(
        pk=grant.pk, revoked_at__isnull=True, expires_at__gt=moment
    ).update(revoked_at=moment, revoked_by=by)
    if not revoked:
        return False
    record(
        "consent.revoked",
        actor=by,
        account=grant.account_id,
        target=grant,
        request=request,
        grant=grant,
        extra={"manager": grant.manager.email},
    )
    return True


@transaction.atomic
def manager_access_set(
    *, account: Account, value: ManagerAccess, by: User, request: HttpRequest | None = None
) -> bool:
    """The customer's consent setting. False when it already had this value."""
    value = ManagerAccess(value)
    before = (
        Account.objects.select_for_update()
        .values_list("manager_access", flat=True)
        .get(pk=account.pk)
    )
    if before == value:
        return False
    Account.objects.filter(pk=account.pk).update(manager_access=value)
    account.manager_access = value
    record(
        "consent.setting_changed",
        actor=by,
        account=account,
        target=account,
        request=request,
        extra={"field": "manager_access", "from": before, "to": value.value},
    )
    return True
