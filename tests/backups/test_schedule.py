"""The beat schedule holds both backups at their cadences, and a daily drill."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from heyloyalty.schedule import BEAT_SCHEDULE


def fires_in_a_day(schedule: Any) -> list[datetime]:
    """Every minute of one day at which the crontab fires."""
    start = datetime(2026, 3, 2, tzinfo=timezone.get_fixed_timezone(0))
    minutes = (start + timedelta(minutes=m) for m in range(24 * 60))
    return [
        t for t in minutes
        if t.minute in schedule.minute and t.hour in schedule.hour
        and t.isoweekday() % 7 in schedule.day_of_week
    ]  # fmt: skip


def test_the_hourly_backup_runs_every_hour():
    entry = BEAT_SCHEDULE["backups.hourly"]
    assert entry["task"] == "backups.tasks.backup_hourly"
    runs = fires_in_a_day(entry["schedule"])
    assert len(runs) == 24
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(hours=1)}


def test_the_three_hourly_backup_runs_every_three_hours():
    entry = BEAT_SCHEDULE["backups.three_hourly"]
    assert entry["task"] == "backups.tasks.backup_three_hourly"
    runs = fires_in_a_day(entry["schedule"])
    assert len(runs) == 8
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(hours=3)}


def test_a_restore_drill_runs_every_day_and_missed_backups_are_looked_for():
    assert BEAT_SCHEDULE["backups.drill"]["task"] == "backups.tasks.drill"
    assert len(fires_in_a_day(BEAT_SCHEDULE["backups.drill"]["schedule"])) == 1
    assert BEAT_SCHEDULE["backups.check"]["schedule"] <= timedelta(minutes=15)
    assert len(fires_in_a_day(BEAT_SCHEDULE["backups.keys_remind"]["schedule"])) == 1
