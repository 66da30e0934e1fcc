"""What the backup tests share: backup keys and a backup directory of the test's own, a
customer account filled with a row in every table a backup holds, and snapshots of
those tables as PostgreSQL prints each row (every column, as text), to compare
byte for byte."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, Role, User
from backups import tables
from backups.models import BackupFile, BackupKind, RunStatus
from backups.services import backup_create
from campaigns.models import (
    Autoresponder,
    AutoresponderStep,
    Bounce,
    Campaign,
    CampaignHourly,
    CampaignKind,
    CampaignStats,
    CampaignTarget,
    Delivery,
    DeliveryActivity,
    Link,
    LinkStats,
    MemberActivity,
    SenderDomain,
    TrackingEvent,
    Unsubscribe,
)
from heyloyalty import keys
from members import services as member_services
from members.models import List, Member, Segment, Webhook
from tests.conftest import PASSWORD

ALERTS = "oncall@ops.example"


def backup_key_spec(key_id: str = "b1") -> str:
    return f"{key_id}:2026-01-01:{Fernet.generate_key().decode()}"


@pytest.fixture(autouse=True)
def backup_settings(settings, tmp_path: Path):
    """Backups of the test's own, encrypted with a fresh key, alerts to ALERTS only (by
    Django's mail, no alert relay, no webhook: a test sets those it needs)."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_ENCRYPTION_KEYS = backup_key_spec()
    settings.BACKUP_MIN_FREE_BYTES = 0
    settings.BACKUP_S3_BUCKET = ""
    settings.ALERT_EMAILS = [ALERTS]
    settings.ALERT_SMTP_URL = ""
    settings.MONITOR_WEBHOOK_URL = ""
    settings.MONITOR_WEBHOOK_SECRET = ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


@dataclass
class Filled:
    """What ``fill`` made for one account, and the secrets a backup must not show."""

    account: Account
    member_list: List
    members: list[Member]
    campaign: Campaign
    api_secret: str
    webhook_secret: str
    emails: list[str]


def fill(account: Account, *, label: str, members: int = 12) -> Filled:
    """A row in every table of both backups, for ``account``."""
    owner = User.objects.filter(account=account, role=Role.OWNER).first()
    if owner is None:
        owner = account_services.user_create(
            email=f"owner-{label}@{label}.test",
            role=Role.OWNER,
            account=account,
            password=PASSWORD,
            must_change_password=False,
        )
    owner.groups.add(Group.objects.get_or_create(name=f"{label} readers")[0])
    member_list = member_services.list_create(account=account, name=f"{label} news")
    people = [
        member_services.member_create(
            member_list=member_list,
            values={"email": f"{label}-reader{i}@mail.{label}.test", "firstname": f"Åse {i}"},
        )
        for i in range(members)
    ]
    Segment.objects.create(
        list=member_list,
        name=f"{label} fans",
        rules={"logic": "and", "rules": [{"field": "firstname", "op": "eq", "values": ["x"]}]},
    )
    webhook_secret = uuid.uuid4().hex + uuid.uuid4().hex
    Webhook.objects.create(
        list=member_list,
        url=f"https://hooks.{label}.example/in",
        events=["open"],
        secret_encrypted=keys.encrypt(webhook_secret),
    )
    _, api_secret = account_services.apikey_create(account=account, name=f"{label} shop")
    SenderDomain.objects.create(account=account, domain=f"{label}.example", verified=True)
    campaign = Campaign.objects.create(
        account=account,
        name=f"{label} spring",
        subject="Forår",
        from_email=f"news@{label}.example",
        html="<p>Hej</p>",
        status="sent",
        created_by=owner,
        recipients=len(people),
        sent=len(people),
    )
    CampaignTarget.objects.create(campaign=campaign, list=member_list)
    Link.objects.create(campaign=campaign, position=0, url=f"https://{label}.example/bread")
    now = timezone.now().replace(microsecond=123456)
    for person in people:
        delivery = Delivery.objects.create(
            campaign=campaign, member=person, email=person.email, status="sent", sent_at=now
        )
        for kind, position in (("open", None), ("click", 0)):
            TrackingEvent.objects.create(
                event_id=uuid.uuid4(),
                delivery_id=delivery.pk,
                campaign_id=campaign.pk,
                member_id=person.pk,
                kind=kind,
                position=position,
                ip="192.0.2.0",
                user_agent="Mozilla/5.0 (æøå)",
                created_at=now,
            )
        DeliveryActivity.objects.create(
            delivery_id=delivery.pk, opened_at=now, clicked_at=now, positions=[0]
        )
        MemberActivity.objects.create(member_id=person.pk, opened=1, clicked=1)
    CampaignStats.objects.create(
        campaign=campaign, opens=len(people), unique_opens=len(people), clicks=len(people)
    )
    LinkStats.objects.create(campaign=campaign, position=0, clicks=len(people))
    CampaignHourly.objects.create(
        campaign=campaign, hour=now.replace(minute=0, second=0, microsecond=0), opens=3
    )
    Bounce.objects.create(
        account=account, campaign=campaign, member=people[0], email=people[0].email,
        kind="hard", source="smtp", reason="550 no such user",
    )  # fmt: skip
    Unsubscribe.objects.create(
        account=account, campaign=campaign, member=people[1], list=member_list, source="page"
    )
    responder = Autoresponder.objects.create(
        account=account, list=member_list, name=f"{label} welcome", active=True,
        trigger_campaign=campaign, window_start_hour=8, window_end_hour=20,
    )  # fmt: skip
    step = Campaign.objects.create(
        account=account, kind=CampaignKind.AUTORESPONDER, name="welcome 1", status="sending"
    )
    AutoresponderStep.objects.create(
        autoresponder=responder, position=1, delay_minutes=60, campaign=step
    )
    return Filled(
        account,
        member_list,
        people,
        campaign,
        api_secret,
        webhook_secret,
        [p.email for p in people] + [owner.email],
    )


def snapshot(*, account: Account | None = None, cursor=None) -> dict[str, list[str]]:
    """Every row of every table in scope (of one account, or all), as PostgreSQL prints
    the whole row, in id order."""
    out = {}
    own = cursor is None
    cursor = cursor or connection.cursor()
    try:
        for table in tables.ORDER:
            where = ""
            params: dict[str, object] = {}
            if account is not None:
                where = f"WHERE {tables.account_condition(table, lambda n: n)}"
                params = {"account": account.pk}
            row = "t::text"
            if table.name == "accounts_user_groups":
                # Group ids differ between databases; the group's name is what counts.
                row = "(t.user_id, (SELECT name FROM auth_group g WHERE g.id = t.group_id))::text"
            cursor.execute(
                f'SELECT {row} FROM "{table.name}" t {where} ORDER BY "{table.pk}"',  # noqa: S608
                params,
            )
            out[table.name] = [row[0] for row in cursor.fetchall()]
    finally:
        if own:
            cursor.close()
    return out


def wipe() -> None:
    """Empty every table a backup holds (and what depends on them)."""
    names = ", ".join(f'"{t.name}"' for t in tables.ORDER)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {names} CASCADE")


def make_backups() -> dict[str, BackupFile]:
    """A three-hourly and an hourly backup, made now."""
    made = {}
    for kind in (BackupKind.THREE_HOURLY, BackupKind.HOURLY):
        run = backup_create(kind=kind)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.file is not None
        made[kind.value] = run.file
    return made


def path_of(item: BackupFile) -> Path:
    from backups import storage

    return storage.local_path(item.name)


def in_the_past(hours: float) -> timedelta:
    return timedelta(hours=hours)
