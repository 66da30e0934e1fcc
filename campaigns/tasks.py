"""Thin tasks: ids in, one pipeline call. Each is harmless to run twice: the pipeline
moves rows and campaigns by conditional updates."""

from celery import shared_task


@shared_task
def prepare(campaign_id: int) -> None:
    from campaigns.pipeline import campaign_prepare

    campaign_prepare(campaign_id=campaign_id)


@shared_task
def deliver(campaign_id: int) -> None:
    # Not acks_late: a task lost with its worker is restarted by the reaper, and the rows
    # it had claimed go back after their lease.
    from campaigns.sending import campaign_deliver

    campaign_deliver(campaign_id=campaign_id)


@shared_task
def reap() -> dict[str, int]:
    from campaigns.pipeline import campaigns_reap

    return campaigns_reap()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def notify_paused(campaign_id: int) -> None:
    from campaigns.notices import notify_paused as notify

    notify(campaign_id=campaign_id)
