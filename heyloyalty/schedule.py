"""Every periodic job, declared in one place.

Add a job here and nowhere else (CONTRIBUTING.md, "Add a beat job"). Each entry
names a thin task that calls one service; the task must be harmless to run twice.
"""

from datetime import timedelta
from typing import Any

from heyloyalty import env

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "accounts.clear_expired_sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": timedelta(hours=1),
    },
    # Restarts sends whose worker died, starts scheduled campaigns that are due.
    "campaigns.reap": {
        "task": "campaigns.tasks.reap",
        # From the environment, not the settings: importing the Celery app must not
        # load the settings (the dev launcher imports it before .env exists).
        "schedule": timedelta(seconds=env.get_int("SEND_REAPER_SECONDS", 15)),
    },
}
