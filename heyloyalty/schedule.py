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
    # Autoresponders' triggers become Delivery rows of their steps (campaigns/
    # autoresponder_triggers.py); running twice or concurrently writes nothing twice.
    "campaigns.autoresponders_evaluate": {
        "task": "campaigns.tasks.autoresponders_evaluate",
        "schedule": timedelta(seconds=env.get_int("AUTORESPONDER_BEAT_SECONDS", 60)),
    },
    # Webhook deliveries whose retry is due, and those a dead worker had claimed.
    "members.webhooks_due": {
        "task": "members.tasks.webhooks_due",
        "schedule": timedelta(seconds=env.get_int("WEBHOOK_BEAT_SECONDS", 60)),
    },
    # Opens and clicks from the Redis buffer into PostgreSQL (campaigns/tracking_writer.py).
    # One flusher at a time; a run that finds another busy returns at once, and one that
    # waited longer than the interval in the queue is dropped: the next one comes soon.
    "campaigns.tracking_flush": {
        "task": "campaigns.tasks.tracking_flush",
        "schedule": timedelta(seconds=env.get_int("TRACKING_FLUSH_SECONDS", 5)),
        "options": {"expires": env.get_int("TRACKING_FLUSH_SECONDS", 5)},
    },
    # Open rates of the recipients of campaigns that finished (their sent_mail grew).
    "campaigns.tracking_member_rates": {
        "task": "campaigns.tasks.tracking_member_rates",
        "schedule": timedelta(minutes=1),
    },
    # Finished webhook deliveries older than WEBHOOK_LOG_DAYS leave the log.
    "members.webhooks_prune": {
        "task": "members.tasks.webhooks_prune",
        "schedule": timedelta(hours=6),
    },
}
