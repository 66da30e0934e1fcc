"""The readiness checks, shared by /readyz and the watchdog.

Each check answers within MONITOR_CHECK_TIMEOUT_SECONDS and never raises. Its status:

- ``ok``; ``fail``: broken; ``warn``: worth a look, not an incident (an old backup);
- ``unknown``: cannot be told because what it is read from is down (the workers'
  heartbeats while Redis is down); that dependency's own check fails instead.

A failing *critical* check makes /readyz answer 503. Every failing check (critical or a
late beat job) opens an incident in the watchdog.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from monitoring import heartbeats

OK, FAIL, WARN, UNKNOWN = "ok", "fail", "warn", "unknown"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    critical: bool
    ms: float = 0.0

    @property
    def failing(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timeout() -> int:
    return int(settings.MONITOR_CHECK_TIMEOUT_SECONDS)


def _describe(error: BaseException) -> str:
    """A short reason, without host names or credentials from a connection string."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "refused" in text.lower():
        return "connection refused"
    if isinstance(error, TimeoutError) or "timed out" in text.lower():
        return "timed out"
    return type(error).__name__


def database() -> tuple[str, str]:
    """A connection of its own with a connect and statement timeout, so that a database
    that hangs cannot hang the check."""
    import psycopg2

    params = connection.get_connection_params()
    params["connect_timeout"] = _timeout()
    params["options"] = f"-c statement_timeout={_timeout() * 1000}"
    try:
        conn = psycopg2.connect(**params)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        finally:
            conn.close()
    except psycopg2.Error as error:
        return FAIL, _describe(error)
    return OK, "answers"


def redis() -> tuple[str, str]:
    try:
        heartbeats.monitor_redis().ping()
    except Exception as error:
        return FAIL, _describe(error)
    return OK, "answers"


def worker() -> tuple[str, str]:
    try:
        live = heartbeats.live_workers()
    except Exception:
        return UNKNOWN, "Redis unreachable"
    if not live:
        return FAIL, f"no worker heartbeat in the last {settings.MONITOR_STALE_SECONDS} s"
    return OK, f"{len(live)} live"


def beat() -> tuple[str, str]:
    try:
        age = heartbeats.beat_age()
    except Exception:
        return UNKNOWN, "Redis unreachable"
    if age is None:
        return FAIL, "no heartbeat yet"
    if age > settings.MONITOR_STALE_SECONDS:
        return FAIL, f"last heartbeat {age:.0f} s ago"
    return OK, f"last heartbeat {age:.0f} s ago"


def relay() -> tuple[str, str]:
    """Connect, EHLO, STARTTLS where configured (certificate checked), NOOP, QUIT."""
    if settings.EMAIL_BACKEND != SMTP_BACKEND:
        return OK, f"not checked: mail goes through {settings.EMAIL_BACKEND.rsplit('.', 2)[-2]}"
    host, port = settings.EMAIL_HOST, int(settings.EMAIL_PORT)
    context = ssl.create_default_context()
    try:
        if settings.EMAIL_USE_SSL:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=_timeout(), context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=_timeout())
        try:
            smtp.ehlo()
            if settings.EMAIL_USE_TLS:
                smtp.starttls(context=context)
                smtp.ehlo()
            code, _ = smtp.noop()
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
    except (OSError, smtplib.SMTPException) as error:
        return FAIL, _describe(error)
    if code != 250:
        return FAIL, f"NOOP answered {code}"
    return OK, "answers"


def jobs(*, watch: bool = False) -> tuple[str, str]:
    """Beat jobs that have not run within their period plus grace. ``watch`` (the
    watchdog) starts watching jobs never seen; /readyz only reads."""
    from monitoring.models import Heartbeat
    from monitoring.services import heartbeats_watch

    specs = heartbeats.job_specs()
    try:
        if watch:
            rows = heartbeats_watch(names=list(specs))
        else:
            rows = {h.name: h for h in Heartbeat.objects.filter(name__in=list(specs))}
    except DatabaseError:
        return UNKNOWN, "database unreachable"
    now = timezone.now()
    late = []
    for name, spec in specs.items():
        row = rows.get(name)
        if row is not None and heartbeats.job_late(spec, row.last_seen_at, row.watching_since):
            last = row.last_seen_at
            ago = f"last run {_ago(now - last)} ago" if last else "never ran"
            late.append(f"{name} ({ago})")
    if late:
        return FAIL, "late: " + ", ".join(late)
    return OK, f"{len(specs)} jobs on time"


def backup() -> tuple[str, str]:
    from backups.models import BackupFile

    try:
        newest = (
            BackupFile.objects.filter(deleted_at__isnull=True)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
    except DatabaseError:
        return UNKNOWN, "database unreachable"
    if newest is None:
        return WARN, "no backup yet"
    age = timezone.now() - newest
    text = f"newest {_ago(age)} old"
    if age > timedelta(minutes=settings.MONITOR_BACKUP_MAX_AGE_MINUTES):
        return WARN, text
    return OK, text


def web() -> tuple[str, str]:
    """GET <MONITOR_WEB_URL>/healthz, with the site's own Host header."""
    url = settings.MONITOR_WEB_URL.rstrip("/") + "/healthz"
    if urlsplit(url).scheme not in {"http", "https"}:
        return FAIL, "MONITOR_WEB_URL must start with http:// or https://"
    hosts = [h for h in settings.ALLOWED_HOSTS if h not in {"*", ""} and not h.startswith(".")]
    headers = {"Host": hosts[0]} if hosts else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=_timeout()) as answer:  # noqa: S310 - scheme checked above  # nosec B310
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:
        return FAIL, _describe(error)
    return (OK, "answers") if status == 200 else (FAIL, f"/healthz answered {status}")


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# name -> (check, critical). Critical: /readyz answers 503 while it fails.
CHECKS: dict[str, tuple[Callable[[], tuple[str, str]], bool]] = {
    "database": (database, True),
    "redis": (redis, True),
    "worker": (worker, True),
    "beat": (beat, True),
    "relay": (relay, True),
    "jobs": (jobs, False),
    "backup": (backup, False),
}


def run(*, watchdog: bool = False) -> list[Check]:
    """Every check, in order. The watchdog's run also watches new jobs and checks the web
    process (when MONITOR_WEB_URL is set)."""
    checks = dict(CHECKS)
    if watchdog:
        checks["jobs"] = (lambda: jobs(watch=True), False)
        if settings.MONITOR_WEB_URL:
            checks = {"web": (web, True), **checks}
    results: list[Check] = []
    for name, (check, critical) in checks.items():
        started = time.monotonic()
        source = DEPENDS_ON.get(name)
        if source and any(c.name == source and c.failing for c in results):
            status, detail = UNKNOWN, f"{source} unreachable"
        else:
            try:
                status, detail = check()
            except Exception as error:  # a bug in a check must not hide the others
                status, detail = FAIL, f"check failed: {type(error).__name__}"
        if name == "database" and status != OK:
            _close_broken_connection()
        ms = round((time.monotonic() - started) * 1000, 1)
        results.append(Check(name, status, detail, critical, ms))
    return results


# Read from another dependency: unknown while that one is down (no wait for a timeout).
DEPENDS_ON = {"worker": "redis", "beat": "redis", "jobs": "database", "backup": "database"}


def _close_broken_connection() -> None:
    """The database went away: the next use of Django's connection opens a new one."""
    with contextlib.suppress(DatabaseError):
        connection.close()


def database_down(results: list[Check]) -> bool:
    return any(c.name == "database" and c.failing for c in results)
