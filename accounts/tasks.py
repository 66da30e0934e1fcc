from celery import shared_task
from django.core.management import call_command


@shared_task(acks_late=True)
def clear_expired_sessions() -> None:
    """Idempotent, so safe to run again after a lost acknowledgement."""
    call_command("clearsessions")


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def send_access_request(access_request_id: int) -> None:
    """Mail the owners an account manager's request for access. Delivered twice, the
    owners get the same links twice: harmless, as each link works once."""
    from accounts.consent_mail import access_request_mail

    access_request_mail(access_request_id=access_request_id)


@shared_task
def close_acting_sessions() -> int:
    """End and log the sessions on a customer's behalf whose time is over (idempotent:
    each is closed by a conditional update)."""
    from accounts.acting import acting_sessions_close

    return acting_sessions_close()


@shared_task
def expire_access_requests() -> int:
    from accounts.consent import access_requests_expire

    return access_requests_expire()
