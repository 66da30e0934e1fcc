"""The customer's view of staff access to their account: labels for the audit events,
the grants they name, and the CSV export."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import AccessGrant, Account
from audit.models import AuditEvent
from audit.selectors import staff_events

ACTION_LABELS = {
    "admin.view": _("Looked at, in the admin panel"),
    "admin.list": _("Listed, in the admin panel"),
    "admin.change": _("Changed, in the admin panel"),
    "admin.add": _("Added, in the admin panel"),
    "admin.delete": _("Deleted, in the admin panel"),
    "admin.history": _("Looked at the history, in the admin panel"),
    "admin.export": _("Exported, in the admin panel"),
    "api.request": _("Used the API"),
    "dashboard.view": _("Opened a page of your dashboard"),
    "impersonation.start": _("Started working in your dashboard on your behalf"),
    "impersonation.page": _("Opened a page of your dashboard on your behalf"),
    "impersonation.end": _("Stopped working in your dashboard"),
    "access.refused": _("Was refused access"),
    "consent.requested": _("Asked for access"),
    "consent.setting_changed": _("Changed the consent setting"),
    "auth.password_set": _("Set a user's password"),
    "apikey.created": _("Created an API key"),
    "apikey.revoked": _("Revoked an API key"),
    "export.members": _("Exported members"),
    "backup.restored": _("Restored a backup"),
}

# The filter on the page: a name -> the actions it shows.
KINDS: dict[str, tuple[Any, Q]] = {
    "pages": (
        _("Pages and data"),
        Q(action__startswith="admin.")
        | Q(action__startswith="dashboard.")
        | Q(action__startswith="api.")
        | Q(action__startswith="impersonation.")
        | Q(action__startswith="export."),
    ),
    "consent": (_("Requests and consent"), Q(action__startswith="consent.")),
    "refused": (_("Refused attempts"), Q(action="access.refused") | Q(action__endswith="_refused")),
}


# Why staff were refused, or a session on the customer's behalf ended.
REASON_LABELS = {
    "not_assigned": _("not their account manager"),
    "no_grant": _("no approval from you"),
    "expired": _("your approval had expired"),
    "revoked": _("you had revoked your approval"),
    "not_staff": _("not staff"),
    "forged": _("a forged link"),
    "used": _("a link already used"),
    "not_owner": _("opened by someone not an owner"),
    "ended": _("ended by them"),
    "time_limit": _("the time allowed was over"),
    "idle": _("30 minutes without activity"),
    "access_withdrawn": _("access withdrawn"),
    "signed_out": _("signed out"),
    "replaced": _("moved to another account"),
    "admin": _("as a main admin"),
    "standing": _("standing access"),
    "grant": _("under your approval"),
}
CODED_REASONS = (
    "access.refused",
    "consent.link_refused",
    "impersonation.start",
    "impersonation.end",
)


def reason_label(event: AuditEvent) -> str:
    """The event's reason in words: a code for refusals and sessions, else as written."""
    if event.action in CODED_REASONS:
        return str(REASON_LABELS.get(event.reason, event.reason))
    return event.reason


def action_label(action: str) -> str:
    return str(ACTION_LABELS.get(action, action))


def events_for(account: Account, kind: str = "") -> QuerySet[AuditEvent]:
    events = staff_events(account)
    if kind in KINDS:
        events = events.filter(KINDS[kind][1])
    return events


def grants_of(account: Account, events: Iterable[AuditEvent]) -> dict[int, AccessGrant]:
    """The grants the events name, in one query (only this account's)."""
    ids = {e.grant_id for e in events if e.grant_id is not None}
    if not ids:
        return {}
    return {g.pk: g for g in AccessGrant.objects.filter(account=account, pk__in=ids)}


def _cell(value: Any) -> Any:
    """A spreadsheet must not run a formula a member of staff's input put in a cell."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


CSV_HEADER = [
    "seq",
    "time",
    "staff_email",
    "staff_role",
    "action",
    "what",
    "target_type",
    "target_id",
    "target",
    "method",
    "path",
    "status",
    "ip",
    "grant_id",
    "grant_expires_at",
    "reason",
]


def csv_rows(account: Account, kind: str = "") -> Iterator[list[Any]]:
    """Every staff event of the account, newest first, read in chunks."""
    yield CSV_HEADER
    events = events_for(account, kind).iterator(chunk_size=2000)
    grants = {g.pk: g for g in AccessGrant.objects.filter(account=account).only("pk", "expires_at")}
    for event in events:
        grant = grants.get(event.grant_id) if event.grant_id is not None else None
        yield [
            _cell(value)
            for value in (
                event.seq,
                timezone.localtime(event.at).isoformat(),
                event.actor_email,
                event.actor_role,
                event.action,
                action_label(event.action),
                event.target_type,
                event.target_id,
                event.target_repr,
                event.method,
                event.path,
                event.status if event.status is not None else "",
                event.ip or "",
                event.grant_id or "",
                grant.expires_at.isoformat() if grant else "",
                event.reason,
            )
        ]
