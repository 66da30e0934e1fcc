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
