from celery import shared_task
from django.core.management import call_command


@shared_task(acks_late=True)
def clear_expired_sessions() -> None:
    """Idempotent, so safe to run again after a lost acknowledgement."""
    call_command("clearsessions")
