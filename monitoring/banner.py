"""What the banner says: the open incidents in words for customers.

Read from the status store (monitoring/status.py), never from the database, so the banner
shows when the database is down."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from monitoring import status

# What a failing component means for a customer, from the worst down.
IMPACT = (
    ("database", gettext_noop("Heyloyalty is not working as it should: some pages may not load.")),
    ("web", gettext_noop("Heyloyalty is not working as it should: some pages may not load.")),
    ("redis", gettext_noop("Sending, imports and statistics are delayed. Your data is safe.")),
    (
        "relay",
        gettext_noop("Outgoing email is delayed. Messages wait and go out when it is solved."),
    ),
    ("worker", gettext_noop("Sending and other background work are delayed. Nothing is lost.")),
    ("beat", gettext_noop("Scheduled work (autoresponders, scheduled campaigns) is delayed.")),
    ("jobs", gettext_noop("Scheduled work (autoresponders, scheduled campaigns) is delayed.")),
)


def impact(notice: status.Notice) -> str:
    """What customers read: the main admin's message, else what the components mean."""
    if notice.message:
        return notice.message
    if notice.kind == "maintenance":
        return _("Some features may be unavailable for a while.")
    for component, text in IMPACT:
        if component in notice.components:
            return _(text)
    return _("Some features may be slow or unavailable.")


def heading(notice: status.Notice) -> str:
    if notice.kind == "maintenance":
        return _("Planned maintenance")
    return _("We are working on a problem")


def describe(notice: status.Notice) -> dict[str, Any]:
    return {
        "key": notice.key,
        "kind": notice.kind,
        "heading": heading(notice),
        "text": impact(notice),
        "started_at": notice.started_at,
        "ends_at": notice.ends_at,
        "upcoming": notice.upcoming,
    }


def current() -> list[dict[str, Any]]:
    return [describe(n) for n in status.notices()]
