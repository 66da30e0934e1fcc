"""Alerts for technicians about backups and keys, through the monitoring app's channel.

An alert goes where the watchdog's go (monitoring/alerts.py): an email to ``ALERT_EMAILS``
and the active members of the Technicians group (only ``ALERT_EMAILS`` when the database
does not answer), through ALERT_SMTP_URL when set, and a JSON POST to
MONITOR_WEBHOOK_URL when set (signed as the watchdog's are). The subject is
``[Heyloyalty alert] <what happened>``; the webhook's JSON has the watchdog's keys, with
``"event": "backup"``, no incident and no checks, and the mail's text under ``"text"``.

Sent from a task or a command, after the run it is about was recorded. A relay or a
webhook that is down costs the alert (it is logged, and the run's ``alerted_at`` stays
empty), never the backup: nothing here raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from monitoring import alerts as channel

log = logging.getLogger(__name__)

EVENT = "backup"


@dataclass(frozen=True)
class BackupAlert(channel.Alert):
    """A backup alert in the watchdog's envelope (``event`` is ``"backup"``; the incident
    and the checks are empty), so that monitoring's send_email and send_webhook carry it."""

    title: str = ""
    body: str = ""

    @property
    def subject(self) -> str:
        return f"[Heyloyalty alert] {self.title}"

    def text(self) -> str:
        lines = [
            self.body.rstrip(),
            "",
            f"Backups:   {settings.PUBLIC_URL}/admin/backups/",
            f"Sent:      {timezone.localtime(self.at):%Y-%m-%d %H:%M:%S %Z}",
        ]
        return "\n".join(lines) + "\n"

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "subject": self.subject,
            "at": self.at.isoformat(),
            "incident": None,
            "checks": [],
            "text": self.text(),
        }


def alert(*, subject: str, text: str) -> bool:
    """Mail the technicians and POST to the monitoring webhook when one is set.

    True when someone was told: the relay accepted the mail for at least one recipient,
    or the webhook answered 2xx. False when there is nobody to tell or neither went out."""
    log.error("alert: %s", subject)
    message = BackupAlert(
        event=EVENT, incident={}, checks=[], at=timezone.now(), title=subject, body=text
    )
    mailed = posted = False
    try:
        to = channel.recipients([])
        # send_email is True for an empty list (nothing for the watchdog to retry).
        mailed = bool(to) and channel.send_email(message, to)
    except Exception:  # a misconfigured relay must not fail the task that alerts
        log.exception("the alert %r could not be mailed", subject)
    if settings.MONITOR_WEBHOOK_URL:
        try:
            # send_webhook is True also for a URL that is not http(s) (logged there): that
            # told nobody.
            posted = channel.send_webhook(message) and channel.webhook_usable()
        except Exception:
            log.exception("the alert %r could not be posted to the webhook", subject)
    if not (mailed or posted):
        log.error("nobody was told of %r (no recipient, or the relay and webhook failed)", subject)
    return mailed or posted
