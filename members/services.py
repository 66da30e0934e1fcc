"""Every write to lists and members."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from accounts.models import Account
from members.models import List, Member


@dataclass(frozen=True)
class MemberData:
    email: str
    firstname: str = ""
    lastname: str = ""
    mobile: str = ""


def list_create(*, account: Account, name: str) -> List:
    return List.objects.create(account=account, name=name.strip())


@transaction.atomic
def members_add(*, member_list: List, members: Iterable[MemberData], batch_size: int = 1000) -> int:
    """Add members in bulk; returns how many were added."""
    rows = [
        Member(
            list=member_list,
            email=m.email.strip().lower(),
            firstname=m.firstname,
            lastname=m.lastname,
            mobile=m.mobile,
        )
        for m in members
    ]
    Member.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)
