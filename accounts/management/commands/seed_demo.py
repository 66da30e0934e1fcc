"""Demo data for `make run`. Idempotent: a second run changes nothing."""

from itertools import cycle, product
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from accounts import services
from accounts.models import Account, ManagerAccess, Role, User
from campaigns.models import Campaign
from campaigns.services import campaign_create, sender_domain_add, sender_domain_verify
from heyloyalty.commands import OperationsCommand
from members.models import List
from members.services import MemberData, list_create, members_add

# Known passwords, for a laptop only: the command refuses to run with DEBUG off.
DEMO_LOGINS = [
    {
        "role": Role.ADMIN,
        "name": "Signe Lund",
        "email": "admin@example.com",
        "password": "demo-admin-pass",
    },
    {
        "role": Role.MANAGER,
        "name": "Mikkel Dahl",
        "email": "manager@example.com",
        "password": "demo-manager-pass",
    },
    {
        "role": Role.OWNER,
        "name": "Karen Holm",
        "email": "owner@example.com",
        "password": "demo-owner-pass",
    },
]
DEMO_ACCOUNT = "Demo Shop ApS"
DEMO_LIST = "Newsletter"
DEMO_MEMBERS = 1000
DEMO_DOMAIN = "example.com"
DEMO_CAMPAIGN = "Spring newsletter"
DEMO_HTML = """<!doctype html>
<html><body style="font-family: Arial, sans-serif; color: #1c2024">
<h1>Hej {{ firstname | default: "ven" }}!</h1>
<p>Spring has arrived at Demo Shop, and so has our new collection.</p>
<p><a href="https://example.com/spring">See the spring collection</a></p>
<p style="font-size: 12px; color: #50565c">You get this because you are on our newsletter.
<a href="{{ unsubscribe_url }}">Unsubscribe</a>.</p>
</body></html>
"""

FIRST = [
    "Anna",
    "Søren",
    "Mette",
    "Bjørn",
    "Åse",
    "Lars",
    "Freja",
    "Mads",
    "Ida",
    "Jørgen",
    "Karen",
    "Niels",
    "Sofie",
    "Rasmus",
    "Emma",
    "Frederik",
    "Laura",
    "Mikkel",
    "Clara",
    "Ole",
]
LAST = [
    "Jensen",
    "Nielsen",
    "Hansen",
    "Pedersen",
    "Andersen",
    "Christensen",
    "Larsen",
    "Sørensen",
    "Rasmussen",
    "Jørgensen",
    "Petersen",
    "Madsen",
    "Kristensen",
    "Olsen",
    "Thomsen",
    "Christiansen",
    "Poulsen",
    "Johansen",
    "Møller",
    "Mortensen",
]


def _ascii(name: str) -> str:
    return name.lower().replace("ø", "oe").replace("å", "aa").replace("æ", "ae")


def demo_members(count: int) -> list[MemberData]:
    names = cycle(product(FIRST, LAST))
    return [
        MemberData(
            email=f"{_ascii(first)}.{_ascii(last)}.{i}@example.com", firstname=first, lastname=last
        )
        for i, (first, last) in zip(range(count), names, strict=False)
    ]


class Command(OperationsCommand):
    help = "Create the demo logins, a demo account and a list of 1,000 members (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates logins with known passwords; it runs only with DEBUG on"
            )
        admin, manager, owner_login = DEMO_LOGINS
        self._user(admin)
        account = Account.objects.filter(name=DEMO_ACCOUNT).first() or services.account_create(
            name=DEMO_ACCOUNT,
            manager=self._user(manager),
            manager_access=ManagerAccess.ALLOWED,
            default_from_name="Demo Shop",
            default_from_email="news@example.com",
        )
        owner = self._user(owner_login, account=account)
        member_list = List.objects.filter(account=account, name=DEMO_LIST).first()
        if member_list is None:
            member_list = list_create(account=account, name=DEMO_LIST)
            members_add(member_list=member_list, members=demo_members(DEMO_MEMBERS))
        campaign = _demo_campaign(account, member_list)
        result = {
            "url": settings.PUBLIC_URL + "/",
            "admin_url": settings.PUBLIC_URL + "/admin/",
            "account": {"id": account.pk, "name": account.name, "owner": owner.email},
            "list": {
                "id": member_list.pk,
                "name": member_list.name,
                "members": member_list.members.count(),
            },
            "campaign": {"id": campaign.pk, "name": campaign.name, "status": campaign.status},
            "logins": [
                {"role": str(login["role"]), "email": login["email"], "password": login["password"]}
                for login in DEMO_LOGINS
            ],
        }
        text = "\n".join(
            f"  {login['role']:<8} {login['email']:<22} {login['password']}"
            for login in DEMO_LOGINS
        )
        self.emit(options, result, "Demo logins:\n" + text)

    def _user(self, login: dict[str, Any], account: Account | None = None) -> User:
        existing = User.objects.filter(email=login["email"]).first()
        return existing or services.user_create(
            email=login["email"],
            name=login["name"],
            role=login["role"],
            account=account,
            password=login["password"],
            must_change_password=False,
        )


def _demo_campaign(account: Account, member_list: List) -> Campaign:
    """A verified sender domain and one draft ready to send to the demo list."""
    domain = sender_domain_add(account=account, domain=DEMO_DOMAIN, verified=True)
    sender_domain_verify(sender_domain=domain, verified=True)
    return Campaign.objects.filter(account=account, name=DEMO_CAMPAIGN).first() or campaign_create(
        account=account,
        name=DEMO_CAMPAIGN,
        subject='Spring is here, {{ firstname | default: "friend" }}',
        preheader="Our new collection has arrived",
        from_name="Demo Shop",
        from_email=f"news@{DEMO_DOMAIN}",
        html=DEMO_HTML,
        list_ids=[member_list.pk],
    )
