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


@shared_task
def autoresponders_evaluate() -> dict[int, int]:
    # Not retried: the next minute's run looks back over this one's window.
    from campaigns.autoresponder_triggers import autoresponders_evaluate as evaluate

    return evaluate()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def notify_paused(campaign_id: int) -> None:
    from campaigns.notices import notify_paused as notify

    notify(campaign_id=campaign_id)


@shared_task
def tracking_flush() -> dict[str, int]:
    # Not retried: the next beat run seconds later finds what this one left, the batch it
    # had taken included.
    from dataclasses import asdict

    from campaigns.tracking_writer import tracking_flush as flush

    return asdict(flush())


@shared_task
def tracking_member_rates() -> int:
    from campaigns.tracking_writer import member_rates_refresh

    return member_rates_refresh()
