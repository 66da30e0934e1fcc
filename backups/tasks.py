"""Thin tasks for the beat jobs of heyloyalty/schedule.py: one service call each.

A backup may take longer than the default time limit on a big database; the limits here
stay below the broker's visibility timeout. None is acks_late: a backup delivered twice
would only make a second file, but a lost one is noticed as missed (backups_check).
(A backup may run up to 50 minutes: soft_time_limit=3000.)
"""

from celery import shared_task


@shared_task(soft_time_limit=3000, time_limit=3300)
def backup_hourly() -> None:
    from backups.services import backup_create

    backup_create(kind="hourly")


@shared_task(soft_time_limit=3000, time_limit=3300)
def backup_three_hourly() -> None:
    from backups.services import backup_create

    backup_create(kind="three_hourly")


@shared_task(soft_time_limit=3000, time_limit=3300)
def drill() -> None:
    """The daily restore drill of the newest backup of each kind."""
    from backups.services import drill_due

    drill_due()


@shared_task(soft_time_limit=3000, time_limit=3300)
def drill_file(file_id: int) -> None:
    """A drill asked for from the admin panel."""
    from backups.models import BackupFile
    from backups.services import backup_verify

    item = BackupFile.objects.filter(pk=file_id, deleted_at__isnull=True).first()
    if item is not None:
        backup_verify(item=item)


@shared_task(acks_late=True)
def check() -> None:
    """Missed backups and overdue drills become alerts. Harmless twice: each is recorded
    and alerted once per slot."""
    from backups.services import backups_check

    backups_check()


@shared_task(acks_late=True)
def keys_remind() -> None:
    from backups.services import keys_remind

    keys_remind()
