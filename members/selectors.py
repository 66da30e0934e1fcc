"""Reads of lists and members, always scoped to an account."""

from django.db.models import Count, QuerySet

from accounts.models import Account
from members.models import List


def lists_for_account(*, account: Account) -> QuerySet[List]:
    """The account's lists, each with ``member_count``."""
    return List.objects.filter(account=account).annotate(member_count=Count("members"))
