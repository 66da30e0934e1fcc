"""Alerts for technicians about backups and keys.

Until the monitoring app has its own alert channel, an alert is an email to
``ALERT_EMAILS`` and to the active members of the Technicians group. Sent from a task or
a command, after the run it is about was recorded; a mail relay that is down costs the
alert (it is logged), never the backup.
"""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings

from accounts.models import User
from heyloyalty.mail import build_message

log = logging.getLogger(__name__)

TECHNICIANS = "Technicians"


def recipients() -> list[str]:
    emails = set(settings.ALERT_EMAILS)
    emails.update(
        User.objects.filter(groups__name=TECHNICIANS, is_active=True).values_list(
            "email", flat=True
        )
    )
    return sorted(emails)


def alert(*, subject: str, text: str) -> bool:
    """Mail the technicians; False when there is nobody to tell or the relay refused."""
    to = recipients()
    log.error("alert: %s", subject)
    if not to:
        log.error("no ALERT_EMAILS and no active Technicians: nobody was told of %r", subject)
        return False
    message = build_message(to=to, subject=f"[Heyloyalty alert] {subject}", text=text)
    try:
        message.send()
    except (OSError, smtplib.SMTPException):
        log.exception("the alert %r could not be mailed", subject)
        return False
    return True
