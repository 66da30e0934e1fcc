"""Sign-in-as: a member of staff working in a customer's dashboard on their behalf.

A session (``ActingSession``) needs standing access or a grant (``staff_access``), lasts
at most 4 hours and never past its grant, ends after 30 minutes without a request, and
ends at the next request once its grant is revoked or expired or the access otherwise
withdrawn. The browser session only holds the row's id.

Start and end are logged here; every page while acting is logged by the audit
middleware. Each session is ended (and its end logged) exactly once, by whichever comes
first: the End now button, signing out, the next request, or the beat job
``acting_sessions_close`` for a browser that never comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.consent import ConsentError, refusal_message, staff_access
from accounts.models import AccessGrant, Account, ActingSession, User
from audit.services import record

SESSION_KEY = "acting_session"
MAX_DURATION = timedelta(hours=4)
IDLE_TIMEOUT = timedelta(minutes=30)
# Seen-times closer together than this are not written, so a burst of requests costs
# no write each; idle time is measured to within this.
SEEN_RESOLUTION = timedelta(seconds=30)

END_REASONS = (
    "ended",  # the End now button
    "time_limit",  # 4 hours
    "idle",  # 30 minutes without a request
    "revoked",  # the customer revoked the grant
    "expired",  # the grant ran out
    "access_withdrawn",  # consent changed, or the manager no longer assigned
    "signed_out",
    "replaced",  # started working in another account
)


@dataclass(frozen=True)
class Acting:
    """The session under way for a request."""

    session: ActingSession

    @property
    def account(self) -> Account:
        return self.session.account

    @property
    def grant(self) -> AccessGrant | None:
        return self.session.grant

    @property
    def ends_at(self) -> datetime:
        return self.session.ends_at


@dataclass(frozen=True)
class Ended:
    """A session that ended at this request (and was logged), and why."""

    reason: str
    account: Account | None


def ends_at(started_at: datetime, grant: AccessGrant | None) -> datetime:
    limit = started_at + MAX_DURATION
    return min(limit, grant.expires_at) if grant is not None else limit


def acting_start(*, request: HttpRequest, user: User, account: Account) -> Acting:
    """Begin working in ``account``. Raises ``ConsentError`` when staff_access refuses
    (the caller logs the refusal). A session already under way ends first."""
    access = staff_access(user, account)
    if not access.allowed:
        raise ConsentError(refusal_message(access), code=access.why)
    acting_end(request=request, user=user, reason="replaced")
    moment = timezone.now()
    with transaction.atomic():
        session = ActingSession.objects.create(
            user=user,
            account=account,
            grant=access.grant,
            started_at=moment,
            last_seen_at=moment,
            ends_at=ends_at(moment, access.grant),
        )
        record(
            "impersonation.start",
            actor=user,
            account=account,
            target=account,
            request=request,
            grant=access.grant,
            reason=access.why,
            extra={"session": session.pk, "ends_at": session.ends_at.isoformat()},
        )
    # A fresh session key, so a session id seen before the start cannot ride on it.
    request.session.cycle_key()
    request.session[SESSION_KEY] = session.pk
    return Acting(session)


def acting_end(*, request: HttpRequest, user: User, reason: str) -> Account | None:
    """End this browser's session (if any) and log why; returns the account it was in."""
    session_id = request.session.pop(SESSION_KEY, None)
    if session_id is None:
        return None
    session = ActingSession.objects.select_related("account").filter(pk=session_id).first()
    if session is None:
        return None
    session_close(session=session, reason=reason, request=request)
    return session.account


def session_close(
    *,
    session: ActingSession,
    reason: str,
    request: HttpRequest | None = None,
    path: str = "",
    when: datetime | None = None,
) -> bool:
    """End a session once and log it. False when it had ended already.

    ``when`` is the moment the rule ended it (the last request + 30 minutes, the time
    limit), when that is earlier than now; ``path`` the request that found it over.
    """
    moment = timezone.now()
    with transaction.atomic():
        closed = ActingSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
            ended_at=min(when or moment, moment), end_reason=reason
        )
        if not closed:
            return False
        extra: dict[str, Any] = {
            "session": session.pk,
            "started_at": session.started_at.isoformat(),
            "minutes": int(
                (min(when or moment, moment) - session.started_at).total_seconds() // 60
            ),
        }
        if path:
            extra["noticed_at"] = path
        record(
            "impersonation.end",
            actor=session.user,
            account=session.account_id,
            target=session.account,
            request=request,
            grant=session.grant_id,
            reason=reason,
            extra=extra,
        )
    return True


def acting_resume(request: HttpRequest, user: User) -> Acting | Ended | None:
    """The session under way for this request, checked: ``Acting`` while it lasts,
    ``Ended`` when it ends now (logged), None when there is none."""
    session_id = request.session.get(SESSION_KEY)
    if session_id is None:
        return None
    session = (
        ActingSession.objects.select_related("account", "grant", "user")
        .filter(pk=session_id, user=user)
        .first()
    )
    moment = timezone.now()
    reason, when = _why_over(session, moment) if session is not None else ("ended", None)
    if session is None or reason:
        request.session.pop(SESSION_KEY, None)
        if session is not None:
            # Not logged with the request: the request goes on to its own page event.
            session_close(session=session, reason=reason, path=request.path, when=when)
        return Ended(reason, session.account if session else None)
    if moment - session.last_seen_at >= SEEN_RESOLUTION:
        ActingSession.objects.filter(pk=session.pk).update(last_seen_at=moment)
    return Acting(session)


def _why_over(session: ActingSession, moment: datetime) -> tuple[str, datetime | None]:
    """Why the session is over now ("" while it lasts), and since when if known.

    1. Ended already (End now in another tab, the beat job): over.
    2. Past its end (4 hours, or its grant's end), or 30 minutes since the last request.
    3. Started under a grant: over once that grant is revoked, even if another grant
       exists (the customer revoked this one).
    4. In any case staff_access must still allow it (consent changed, manager moved).
    """
    if session.ended_at is not None:
        return session.end_reason or "ended", None
    grant = session.grant
    if moment >= session.ends_at:
        expired = grant is not None and grant.expires_at <= session.ends_at
        return ("expired" if expired else "time_limit"), session.ends_at
    if moment - session.last_seen_at >= IDLE_TIMEOUT:
        return "idle", session.last_seen_at + IDLE_TIMEOUT
    if grant is not None and grant.revoked_at is not None:
        return "revoked", None
    access = staff_access(session.user, session.account)
    if not access.allowed:
        return ("revoked" if access.why == "revoked" else "access_withdrawn"), None
    return "", None


def acting_sessions_close() -> int:
    """The beat job: end (and log) the sessions whose time is over although their
    browser never came back. Returns how many were ended."""
    moment = timezone.now()
    due = (
        ActingSession.objects.filter(ended_at__isnull=True)
        .filter(
            Q(ends_at__lte=moment)
            | Q(last_seen_at__lte=moment - IDLE_TIMEOUT)
            | Q(grant__revoked_at__isnull=False)
        )
        .select_related("account", "grant", "user")
        .order_by("ends_at")
    )
    ended = 0
    for session in due:
        reason, when = _why_over(session, moment)
        if reason and session_close(session=session, reason=reason, when=when):
            ended += 1
    return ended


def acting_sessions_open(account: Account) -> list[ActingSession]:
    """Staff working in the account now (for the customer's page)."""
    return list(
        ActingSession.objects.filter(
            account=account, ended_at__isnull=True, ends_at__gt=timezone.now()
        )
        .filter(last_seen_at__gt=timezone.now() - IDLE_TIMEOUT)
        .select_related("user", "grant")
        .order_by("started_at")
    )


def end_message(reason: str, account: Account | None) -> str:
    from django.utils.translation import gettext as _

    name = account.name if account else ""
    messages = {
        "ended": _("You stopped working in %(account)s."),
        "time_limit": _("Your work in %(account)s ended: the time allowed is over."),
        "idle": _("Your work in %(account)s ended after 30 minutes without activity."),
        "revoked": _("Your work in %(account)s ended: the customer revoked your access."),
        "expired": _("Your work in %(account)s ended: your access expired."),
        "access_withdrawn": _("Your work in %(account)s ended: you no longer have access."),
        "replaced": _("You stopped working in %(account)s."),
    }
    return messages.get(reason, messages["ended"]) % {"account": name}


def on_signed_out(
    sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    """Signing out ends the session on the customer's behalf too: log it."""
    if request is None or user is None or not hasattr(request, "session"):
        return
    acting_end(request=request, user=user, reason="signed_out")
