"""Reads of accounts and users, scoped to who is asking."""

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import CUSTOMER_ROLES, AccessGrant, Account, ManagerAccess, User


def accounts_visible_to(*, staff: User) -> QuerySet[Account]:
    """A main admin sees every account; an account manager only those assigned to them."""
    accounts = Account.objects.select_related("manager").annotate(user_count=Count("users"))
    if staff.is_superuser:
        return accounts
    if staff.is_manager:
        return accounts.filter(manager=staff)
    return accounts.none()


def users_visible_to(*, staff: User) -> QuerySet[User]:
    """A main admin sees every user; an account manager the users of their accounts."""
    users = User.objects.select_related("account")
    if staff.is_superuser:
        return users
    if staff.is_manager:
        # Only where the customer lets them in now: standing access or a live grant (the
        # people of an ask-first account are its data like its members are).
        granted = AccessGrant.objects.filter(
            manager=staff, revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).values("account_id")
        return users.filter(role__in=CUSTOMER_ROLES, account__manager=staff).filter(
            Q(account__manager_access=ManagerAccess.ALLOWED) | Q(account_id__in=granted)
        )
    return users.none()
