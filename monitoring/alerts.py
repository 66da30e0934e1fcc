"""Alerts to the technicians: an email, and a JSON POST to MONITOR_WEBHOOK_URL when set.

Recipients are ``ALERT_EMAILS`` and the active members of the Technicians group (read
from the database; the watchdog remembers the last list for when the database is down).
Mail goes through ALERT_SMTP_URL when set, so that an alert about the campaign relay can
still go out; otherwise through SMTP_URL. README "Monitoring" shows what an alert looks
like.

Events: ``problem`` (an incident opened), ``reminder`` (still open after
MONITOR_REMINDER_MINUTES), ``recovery`` (closed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import get_connection
from django.db import DatabaseError
from django.utils import timezone

from heyloyalty import env
from heyloyalty.mail import build_message

log = logging.getLogger("heyloyalty.monitoring")

TECHNICIANS = "Technicians"
SUBJECTS = {
    "problem": "PROBLEM",
    "reminder": "STILL FAILING",
    "recovery": "RECOVERED",
}


def technicians() -> list[str]:
    """ALERT_EMAILS and the active Technicians; raises DatabaseError when it is down."""
    from accounts.models import User

    emails = set(settings.ALERT_EMAILS)
    emails.update(
        User.objects.filter(groups__name=TECHNICIANS, is_active=True).values_list(
            "email", flat=True
        )
    )
    return sorted(emails)


def recipients(remembered: list[str]) -> list[str]:
    """The technicians now, or (database down) those remembered plus ALERT_EMAILS."""
    try:
        return technicians()
    except DatabaseError:
        return sorted(set(remembered) | set(settings.ALERT_EMAILS))


@dataclass(frozen=True)
class Alert:
    event: str  # problem, reminder, recovery
    incident: dict[str, Any]  # the watchdog's record (monitoring/watchdog.py)
    checks: list[dict[str, Any]]
    at: datetime

    @property
    def subject(self) -> str:
        components = ", ".join(self.incident["components"]) or "-"
        return f"[Heyloyalty alert] {SUBJECTS[self.event]}: {components}"

    def text(self) -> str:
        incident = self.incident
        started = datetime.fromisoformat(incident["started_at"])
        lines = [
            {
                "problem": "Something is broken. The watchdog opened an incident, and customers "
                "see a notice on their dashboard until it is resolved.",
                "reminder": "The incident below is still open.",
                "recovery": "Every check is green again. The incident is closed and the notice "
                "is gone from the dashboard.",
            }[self.event],
            "",
            f"Incident:  {incident['title']}",
            f"Kind:      {incident['kind']}",
            f"Started:   {_when(started)}",
        ]
        if incident.get("resolved_at"):
            ended = datetime.fromisoformat(incident["resolved_at"])
            lines.append(f"Resolved:  {_when(ended)} (after {_duration(ended - started)})")
        else:
            lines.append(f"Open for:  {_duration(self.at - started)}")
        lines += ["", "Checks at " + _when(self.at) + ":"]
        for check in self.checks:
            mark = {"ok": "ok  ", "fail": "FAIL", "warn": "warn"}.get(check["status"], "?   ")
            lines.append(f"  {mark} {check['name']:<9} {check['detail']}")
        lines += [
            "",
            f"Readiness: {settings.PUBLIC_URL}/readyz",
            f"Incidents: {settings.PUBLIC_URL}/admin/monitoring/incident/",
            f"Incident key: {incident['key']}",
            "",
            "You get one alert when an incident opens, a reminder every "
            f"{settings.MONITOR_REMINDER_MINUTES} minutes while it stays open, and one when it "
            "closes.",
        ]
        return "\n".join(lines) + "\n"

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "subject": self.subject,
            "at": self.at.isoformat(),
            "incident": self.incident,
            "checks": self.checks,
        }


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(delta: Any) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


def _connection() -> Any:
    """The alert relay (ALERT_SMTP_URL), or Django's own mail settings."""
    if not settings.ALERT_SMTP_URL:
        return get_connection(timeout=settings.MONITOR_CHECK_TIMEOUT_SECONDS * 3)
    relay = env.parse_smtp_url(settings.ALERT_SMTP_URL)
    return get_connection(
        "django.core.mail.backends.smtp.EmailBackend",
        host=relay["EMAIL_HOST"],
        port=relay["EMAIL_PORT"],
        username=relay["EMAIL_HOST_USER"],
        password=relay["EMAIL_HOST_PASSWORD"],
        use_tls=relay["EMAIL_USE_TLS"],
        use_ssl=relay["EMAIL_USE_SSL"],
        timeout=settings.MONITOR_CHECK_TIMEOUT_SECONDS * 3,
    )


def send_email(alert: Alert, to: list[str]) -> bool:
    """True when the relay accepted it (or there is nobody to tell: nothing to retry)."""
    if not to:
        log.error("no ALERT_EMAILS and no active Technicians: nobody was mailed %r", alert.subject)
        return True
    message = build_message(to=to, subject=alert.subject, text=alert.text())
    message.connection = _connection()
    try:
        message.send()
    except (OSError, smtplib.SMTPException) as error:
        log.warning("the alert %r could not be mailed: %s", alert.subject, error)
        return False
    return True


def webhook_usable() -> bool:
    """MONITOR_WEBHOOK_URL is set and an http(s) URL (send_webhook posts nowhere else)."""
    return urlsplit(settings.MONITOR_WEBHOOK_URL).scheme in {"http", "https"}


def send_webhook(alert: Alert) -> bool:
    """POST the alert as JSON; True when answered 2xx or when no webhook is configured.

    With MONITOR_WEBHOOK_SECRET the body is signed: ``X-Heyloyalty-Signature:
    sha256=<hex HMAC-SHA256 of the body>``."""
    url = settings.MONITOR_WEBHOOK_URL
    if not url:
        return True
    if not webhook_usable():
        log.error("MONITOR_WEBHOOK_URL must start with http:// or https://")
        return True
    body = json.dumps(alert.payload(), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Heyloyalty-watchdog"}
    if settings.MONITOR_WEBHOOK_SECRET:
        digest = hmac.new(settings.MONITOR_WEBHOOK_SECRET.encode(), body, hashlib.sha256)
        headers["X-Heyloyalty-Signature"] = f"sha256={digest.hexdigest()}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        timeout = settings.MONITOR_CHECK_TIMEOUT_SECONDS * 2
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s) only  # nosec B310
            ok = 200 <= answer.status < 300
    except (OSError, ValueError) as error:
        log.warning("the alert webhook failed: %s", error)
        return False
    if not ok:
        log.warning("the alert webhook answered %s", answer.status)
    return ok
