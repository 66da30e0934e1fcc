"""Every periodic job, declared in one place.

Add a job here and nowhere else (CONTRIBUTING.md, "Add a beat job"). Each entry
names a thin task that calls one service; the task must be harmless to run twice.
"""

from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from heyloyalty import env

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "accounts.clear_expired_sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": timedelta(hours=1),
    },
    # Sessions on a customer's behalf whose time is over although the browser never came
    # back are ended and their end logged on time (accounts/acting.py).
    "accounts.close_acting_sessions": {
        "task": "accounts.tasks.close_acting_sessions",
        "schedule": timedelta(minutes=1),
    },
    # Requests for access nobody answered within 72 hours are marked expired.
    "accounts.expire_access_requests": {
        "task": "accounts.tasks.expire_access_requests",
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
    # The audit chain's head, published outside the database: a line in
    # BACKUP_DIR/audit-heads.log and a mail to the technicians (audit/heads.py).
    "audit.publish_head": {
        "task": "audit.tasks.publish_head",
        "schedule": crontab(hour=0, minute=10),
    },
    # Backups (backups/): members, opens, clicks and statistics every hour; accounts,
    # users, API keys, lists and campaigns every three hours (on the hour, staggered).
    "backups.hourly": {
        "task": "backups.tasks.backup_hourly",
        "schedule": crontab(minute=5),
    },
    "backups.three_hourly": {
        "task": "backups.tasks.backup_three_hourly",
        "schedule": crontab(minute=35, hour="*/3"),
    },
    # The daily restore drill of the newest backup of each kind, into a scratch database.
    "backups.drill": {
        "task": "backups.tasks.drill",
        "schedule": crontab(minute=50, hour=4),
    },
    # A missed backup or an overdue drill alerts the technicians (once per slot).
    "backups.check": {
        "task": "backups.tasks.check",
        "schedule": timedelta(minutes=15),
    },
    # System keys older than KEY_ROTATION_DAYS: a reminder to the technicians.
    "backups.keys_remind": {
        "task": "backups.tasks.keys_remind",
        "schedule": crontab(minute=0, hour=9),
    },
}
