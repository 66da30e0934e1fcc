"""Heartbeats: is each process and each beat job alive?

- Every Celery worker and the beat process write a heartbeat to Redis every
  MONITOR_HEARTBEAT_SECONDS from a thread of their own; /readyz and the watchdog call a
  worker or beat whose heartbeat is older than MONITOR_STALE_SECONDS down. A worker that
  stops cleanly removes its own at once.
- Every job in heyloyalty/schedule.py records a heartbeat in the database when it succeeds
  (a Celery signal, so no job can be forgotten). A job that has not run within its period
  plus grace is late, and the watchdog opens an incident for it.

The signal handlers are connected when the app registry is ready (monitoring/apps.py).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from celery import signals
from celery.schedules import crontab, schedule
from django.conf import settings
from django.utils import timezone

from heyloyalty.schedule import BEAT_SCHEDULE

log = logging.getLogger("heyloyalty.monitoring")

HALF_PERIOD_CAP = dt.timedelta(minutes=30)


# -- Beat jobs --------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    name: str  # the entry's name in BEAT_SCHEDULE
    task: str
    period: dt.timedelta  # the longest time between two runs

    @property
    def grace(self) -> dt.timedelta:
        extra = min(self.period / 2, HALF_PERIOD_CAP)
        return dt.timedelta(seconds=settings.MONITOR_JOB_GRACE_SECONDS) + extra

    @property
    def late_after(self) -> dt.timedelta:
        return self.period + self.grace


def period_of(entry: Any) -> dt.timedelta:
    """The longest time between two runs of a beat schedule (timedelta, schedule, crontab)."""
    if isinstance(entry, dt.timedelta):
        return entry
    if isinstance(entry, crontab):
        return _crontab_period(entry)
    if isinstance(entry, schedule):
        return entry.run_every  # type: ignore[attr-defined]
    raise TypeError(f"no heartbeat period for a schedule of type {type(entry).__name__}")


def _crontab_period(cron: Any) -> dt.timedelta:
    """The longest gap between two firings, over a year and a bit of days.

    Celery counts weekdays from Sunday = 0. Minutes of the day are the same every day the
    entry fires on, so the longest gap is either inside a day or from one firing day's
    last minute to the next firing day's first.
    """
    minutes = sorted(h * 60 + m for h in cron.hour for m in cron.minute)
    start = dt.date(2024, 1, 1)
    days = [
        offset
        for offset in range(800)
        if (day := start + dt.timedelta(days=offset)).month in cron.month_of_year
        and day.day in cron.day_of_month
        and day.isoweekday() % 7 in cron.day_of_week
    ]
    if not minutes or not days:
        raise ValueError(f"{cron!r} never fires")
    gaps = [b - a for a, b in itertools.pairwise(minutes)]
    gaps += [
        (next_day - day) * 1440 + minutes[0] - minutes[-1]
        for day, next_day in itertools.pairwise(days)
    ]
    return dt.timedelta(minutes=max(gaps))


@cache
def job_specs() -> dict[str, JobSpec]:
    """Every beat job, by its entry name."""
    return {
        name: JobSpec(name=name, task=entry["task"], period=period_of(entry["schedule"]))
        for name, entry in BEAT_SCHEDULE.items()
    }


@cache
def _jobs_by_task() -> dict[str, tuple[str, ...]]:
    by_task: dict[str, list[str]] = {}
    for spec in job_specs().values():
        by_task.setdefault(spec.task, []).append(spec.name)
    return {task: tuple(names) for task, names in by_task.items()}


def job_succeeded(sender: Any = None, **_: Any) -> None:
    """Celery's task_success: a beat job's task ran to the end."""
    names = _jobs_by_task().get(getattr(sender, "name", ""))
    if not names:
        return
    from monitoring.services import heartbeat_record

    try:
        for name in names:
            heartbeat_record(name=name)
    except Exception:  # the job itself succeeded; a heartbeat lost is only a late alert
        log.exception("could not record the heartbeat of %s", names)


# -- Worker and beat processes ----------------------------------------------------------


def key(name: str) -> str:
    return f"{settings.MONITOR_KEY_PREFIX}:{name}"


WORKERS = "workers"  # a sorted set: worker name -> time of its last heartbeat
BEAT = "beat"  # the time of beat's last heartbeat


@cache
def _client(url: str) -> redis.Redis:
    timeout = settings.MONITOR_CHECK_TIMEOUT_SECONDS
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def monitor_redis() -> redis.Redis:
    """A client that gives up after MONITOR_CHECK_TIMEOUT_SECONDS (the shared one waits)."""
    return _client(settings.REDIS_URL)


def beat_worker(name: str) -> None:
    monitor_redis().zadd(key(WORKERS), {name: time.time()})


def beat_beat() -> None:
    monitor_redis().set(key(BEAT), time.time())


def live_workers(now: float | None = None) -> list[str]:
    since = (now if now is not None else time.time()) - settings.MONITOR_STALE_SECONDS
    members: Any = monitor_redis().zrangebyscore(key(WORKERS), since, "+inf")
    return [m.decode() for m in members]


def beat_age(now: float | None = None) -> float | None:
    """Seconds since beat's last heartbeat; None when there never was one."""
    raw = monitor_redis().get(key(BEAT))
    if raw is None:
        return None
    return (now if now is not None else time.time()) - float(raw)


class Pulse:
    """A daemon thread that calls ``beat`` every MONITOR_HEARTBEAT_SECONDS until stopped.

    A failed write (Redis away) is logged once and tried again on the next beat."""

    def __init__(self, what: str, beat: Any) -> None:
        self.what = what
        self.beat = beat
        self.stopped = threading.Event()
        self.failing = False
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{what}", daemon=True)

    def start(self) -> Pulse:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.beat()
            except Exception as error:
                if not self.failing:
                    log.warning("the %s heartbeat could not be written: %s", self.what, error)
                self.failing = True
            else:
                self.failing = False
            self.stopped.wait(settings.MONITOR_HEARTBEAT_SECONDS)

    def stop(self) -> None:
        self.stopped.set()


_pulses: dict[str, Pulse] = {}


def worker_ready(sender: Any = None, **_: Any) -> None:
    """Celery's worker_ready: the worker consumes; its heartbeat starts."""
    hostname = getattr(sender, "hostname", None) or f"worker@{socket.gethostname()}"
    _pulses["worker"] = Pulse("worker", lambda: beat_worker(hostname)).start()
    _pulses["worker"].hostname = hostname  # type: ignore[attr-defined]


def worker_shutdown(**_: Any) -> None:
    """A worker that stops cleanly says so at once, instead of going stale."""
    pulse = _pulses.pop("worker", None)
    if pulse is None:
        return
    pulse.stop()
    try:
        monitor_redis().zrem(key(WORKERS), pulse.hostname)  # type: ignore[attr-defined]
    except Exception as error:
        log.warning("could not remove the worker heartbeat: %s", error)


def beat_started(**_: Any) -> None:
    """Celery's beat_init and beat_embedded_init: the scheduler runs."""
    if "beat" not in _pulses:
        _pulses["beat"] = Pulse("beat", beat_beat).start()


def connect() -> None:
    signals.task_success.connect(job_succeeded, weak=False, dispatch_uid="monitoring-job")
    signals.worker_ready.connect(worker_ready, weak=False, dispatch_uid="monitoring-worker")
    signals.worker_shutdown.connect(
        worker_shutdown, weak=False, dispatch_uid="monitoring-worker-stop"
    )
    signals.beat_init.connect(beat_started, weak=False, dispatch_uid="monitoring-beat")
    signals.beat_embedded_init.connect(
        beat_started, weak=False, dispatch_uid="monitoring-beat-embedded"
    )


def job_late(spec: JobSpec, last_seen: dt.datetime | None, since: dt.datetime) -> bool:
    """Whether a job that last ran at ``last_seen`` (watched from ``since``) is late now."""
    return timezone.now() - (last_seen or since) > spec.late_after
