"""Thin tasks: ids in, one service call."""

from celery import shared_task


@shared_task(acks_late=True)
def run_import(import_id: int) -> None:
    """Safe to deliver twice: the job is claimed by a conditional update, and the list is
    changed in one transaction at the end."""
    from members.imports import import_run

    import_run(import_id=import_id)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def mail_import_report(import_id: int) -> None:
    from members.imports import import_mail_report

    import_mail_report(import_id=import_id)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def send_optin(member_id: str) -> None:
    from members.optin import optin_send

    optin_send(member_id=member_id)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def send_import_optins(import_id: int, after: list[str] | None = None) -> None:
    """One batch of an import's confirmation mails, then the next batch as a task of its
    own. Safe to deliver twice: each member is claimed before it is mailed (members.optin),
    and a retry starts again from the same place."""
    from members.optin import import_optins_send

    cursor = import_optins_send(import_id=import_id, after=(after[0], after[1]) if after else None)
    if cursor is not None:
        send_import_optins.delay(import_id, list(cursor))


# -- outbound webhooks (members/webhook_delivery.py) -------------------------------------


@shared_task(acks_late=True)
def webhook_send(webhook_id: int) -> None:
    """Safe to deliver twice: deliveries are claimed from the webhook's head under a lock;
    a second task finds the head held and leaves."""
    from members.webhook_delivery import webhook_send as send

    if send(webhook_id=webhook_id):
        webhook_send.delay(webhook_id)


@shared_task
def webhooks_due() -> int:
    from members.webhook_delivery import webhooks_due as due

    return due()


@shared_task
def webhooks_prune() -> int:
    from members.webhook_delivery import webhooks_prune as prune

    return prune()


@shared_task(acks_late=True)
def webhooks_import_emit(import_id: int, created_at: str) -> int:
    """Safe to deliver twice: each row is unique per webhook, member and import."""
    from members.webhook_delivery import webhooks_emit_import

    return webhooks_emit_import(import_id=import_id, created_at=created_at)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def webhook_disabled_notice(webhook_id: int) -> None:
    from members.webhook_delivery import webhook_disabled_notify

    webhook_disabled_notify(webhook_id=webhook_id)
