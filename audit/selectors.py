"""Reads of the audit log, scoped to an account."""

from django.db.models import QuerySet

from accounts.models import STAFF_ROLES, Account
from audit.models import AuditEvent


def staff_events(account: Account) -> QuerySet[AuditEvent]:
    """Every event about ``account`` whose actor is staff (an account manager or a
    main admin), newest first."""
    return AuditEvent.objects.filter(
        account_id=account.pk, actor_role__in=[role.value for role in STAFF_ROLES]
    ).order_by("-seq")
