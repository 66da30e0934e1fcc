"""The status store: what is wrong right now, readable without the database.

One small JSON document, written to MONITOR_STATUS_FILE (atomically; shared by the web
processes of a host, and by the containers that mount the same volume) and to a Redis key
(shared by every host). The watchdog writes it on every pass, and every change of an
incident by a main admin writes it after commit. Web processes read it for the banner:
the file (re-read only when it changed), else Redis; never the database, so the banner
shows when the database is down.

    {"written_at": "...", "incidents": [{"key", "source", "kind", "title", "message",
     "components", "started_at", "ends_at"}], "watchdog": {"at": "...", "state": {...},
     "checks": [...]}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

log = logging.getLogger("heyloyalty.monitoring")

# A watchdog that wrote nothing for this long has stopped: its incidents are not shown
# (an incident that was resolved meanwhile would otherwise stay on every page).
WATCHDOG_SILENT = timedelta(minutes=10)
# Planned maintenance is announced on the banner this long before it starts.
ANNOUNCE = timedelta(days=7)
REDIS_CACHE_SECONDS = 5.0


def _path() -> Path:
    return Path(settings.MONITOR_STATUS_FILE)


def _redis_key() -> str:
    return f"{settings.MONITOR_KEY_PREFIX}:status"


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialises the writers of one host (watchdog passes, admin changes)."""
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_file() -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(_path().read_text(encoding="utf-8"))
        return doc
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("the status file %s is unreadable: %s", _path(), error)
        return None


def read_redis() -> dict[str, Any] | None:
    from monitoring.heartbeats import monitor_redis

    try:
        raw = monitor_redis().get(_redis_key())
    except Exception as error:
        log.info("the status in Redis is unreachable: %s", error)
        return None
    if raw is None:
        return None
    try:
        doc: dict[str, Any] = json.loads(raw)
        return doc
    except ValueError:
        return None


def read() -> dict[str, Any]:
    """The newest document: the file's or Redis's, whichever was written last."""
    docs = [d for d in (read_file(), read_redis()) if d]
    if not docs:
        return {}
    return max(docs, key=lambda d: str(d.get("written_at", "")))


def write(doc: dict[str, Any]) -> None:
    """Both places; a place that fails is logged, the other still written."""
    doc = {**doc, "written_at": timezone.now().isoformat()}
    text = json.dumps(doc, sort_keys=True, default=str)
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".status-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # read by the web processes; nothing secret in it
        os.replace(tmp, path)
    except OSError as error:
        log.warning("could not write the status file %s: %s", path, error)
    from monitoring.heartbeats import monitor_redis

    try:
        monitor_redis().set(_redis_key(), text)
    except Exception as error:
        log.info("could not write the status to Redis: %s", error)
    _cache.forget()


def incident_entry(incident: Any) -> dict[str, Any]:
    """An Incident row as the document keeps it."""
    return {
        "key": incident.key,
        "source": incident.source,
        "kind": incident.kind,
        "title": incident.title,
        "message": incident.message,
        "components": list(incident.components or []),
        "started_at": incident.started_at.isoformat(),
        "ends_at": incident.ends_at.isoformat() if incident.ends_at else None,
    }


def open_incidents_from_database() -> list[dict[str, Any]]:
    from monitoring.models import Incident

    rows = Incident.objects.filter(resolved_at__isnull=True).order_by("started_at")
    return [incident_entry(i) for i in rows]


def publish_from_database() -> None:
    """The open incidents as the database has them; the watchdog's part is kept."""
    try:
        incidents = open_incidents_from_database()
    except DatabaseError as error:
        log.warning("could not read the open incidents: %s", error)
        return
    with locked():
        doc = read()
        doc["incidents"] = incidents
        write(doc)


# -- Reading for the banner -------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    key: str
    kind: str
    title: str
    message: str
    components: tuple[str, ...]
    started_at: datetime
    ends_at: datetime | None
    upcoming: bool  # planned maintenance that has not begun


class _Cache:
    """The parsed file, kept until its modification time changes; Redis's, a few seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file_stamp: tuple[str, int, int] | None = None
        self.doc: dict[str, Any] = {}
        self.redis_until = 0.0

    def forget(self) -> None:
        with self.lock:
            self.file_stamp, self.redis_until = None, 0.0

    def get(self) -> dict[str, Any]:
        path = _path()
        try:
            info = path.stat()
        except OSError:
            info = None
        with self.lock:
            if info is not None:
                stamp = (str(path), info.st_mtime_ns, info.st_size)
                if stamp != self.file_stamp:
                    self.doc, self.file_stamp = read_file() or {}, stamp
                return self.doc
            if time.monotonic() >= self.redis_until:
                self.doc, self.file_stamp = read_redis() or {}, None
                self.redis_until = time.monotonic() + REDIS_CACHE_SECONDS
            return self.doc


_cache = _Cache()


def notices(now: datetime | None = None) -> list[Notice]:
    """The incidents to show on the banner now, oldest first."""
    now = now or timezone.now()
    doc = _cache.get()
    watchdog_at = _parse((doc.get("watchdog") or {}).get("at"))
    watchdog_alive = watchdog_at is not None and now - watchdog_at < WATCHDOG_SILENT
    found: list[Notice] = []
    for entry in doc.get("incidents") or []:
        try:
            notice = _notice(entry, now)
        except (KeyError, TypeError, ValueError):
            continue
        if entry.get("source") == "watchdog" and not watchdog_alive:
            continue
        if notice is not None:
            found.append(notice)
    return sorted(found, key=lambda n: n.started_at)


def _notice(entry: dict[str, Any], now: datetime) -> Notice | None:
    started = _parse(entry["started_at"])
    ends = _parse(entry.get("ends_at"))
    if started is None or (ends is not None and ends <= now):
        return None
    upcoming = started > now
    if upcoming and (entry["kind"] != "maintenance" or started - now > ANNOUNCE):
        return None
    return Notice(
        key=str(entry["key"]),
        kind=str(entry["kind"]),
        title=str(entry["title"]),
        message=str(entry.get("message") or ""),
        components=tuple(entry.get("components") or ()),
        started_at=started,
        ends_at=ends,
        upcoming=upcoming,
    )


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
