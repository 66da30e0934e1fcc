"""What each backup holds, and how a table's rows reach an account.

Hourly: members, deliveries, opens and clicks, and the statistics kept from them.
Three-hourly: accounts, users (and their groups), API keys (the secret as stored,
encrypted), lists with their fields, options, segments and webhooks, sender domains,
campaigns with their targets and links, autoresponders and their steps.

Each table comes with the SQL condition that picks one account's rows (``account``):
``{table}`` placeholders name the tables it looks through, so that one restore can look
through the rows being restored (staging tables) and another through the database.
Tables are listed parents first.
"""

# SQL here is built from our own models' table and column names (quoted), never from
# input; values go as parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django.db import models

HOURLY = "hourly"
THREE_HOURLY = "three_hourly"
KINDS = (HOURLY, THREE_HOURLY)

LISTS = "SELECT id FROM {members_list} WHERE account_id = %(account)s"
CAMPAIGNS = "SELECT id FROM {campaigns_campaign} WHERE account_id = %(account)s"
MEMBERS = f"SELECT id FROM {{members_member}} WHERE list_id IN ({LISTS})"  # nosec B608  # placeholders for our own table names
DELIVERIES = f"SELECT id FROM {{campaigns_delivery}} WHERE campaign_id IN ({CAMPAIGNS})"  # nosec B608  # placeholders for our own table names


@dataclass(frozen=True)
class Table:
    label: str  # app_label.ModelName, or app_label.Model.field for a many-to-many table
    account: str  # condition on the table's own columns (no alias)

    @property
    def model(self) -> type[models.Model]:
        return _model(self.label)

    @property
    def name(self) -> str:
        return str(self.model._meta.db_table)

    @property
    def pk(self) -> str:
        return str(self.model._meta.pk.column)


@cache
def _model(label: str) -> type[models.Model]:
    from django.apps import apps

    parts = label.split(".")
    model = apps.get_model(parts[0], parts[1])
    if len(parts) == 3:  # the table of a many-to-many field
        through = model._meta.get_field(parts[2]).remote_field.through
        if through is None:
            raise LookupError(label)
        return through
    return model


SETS: dict[str, tuple[Table, ...]] = {
    THREE_HOURLY: (
        Table("accounts.Account", "id = %(account)s"),
        Table("accounts.User", "account_id = %(account)s"),
        Table(
            "accounts.User.groups",
            "user_id IN (SELECT id FROM {accounts_user} WHERE account_id = %(account)s)",
        ),
        Table("accounts.ApiKey", "account_id = %(account)s"),
        Table("members.List", "account_id = %(account)s"),
        Table("members.Field", f"list_id IN ({LISTS})"),
        Table(
            "members.FieldOption",
            f"field_id IN (SELECT id FROM {{members_field}} WHERE list_id IN ({LISTS}))",  # nosec B608  # placeholders for our own table names
        ),
        Table("members.Segment", f"list_id IN ({LISTS})"),
        Table("members.Webhook", f"list_id IN ({LISTS})"),
        Table("campaigns.SenderDomain", "account_id = %(account)s"),
        Table("campaigns.Campaign", "account_id = %(account)s"),
        Table("campaigns.CampaignTarget", f"campaign_id IN ({CAMPAIGNS})"),
        Table("campaigns.Link", f"campaign_id IN ({CAMPAIGNS})"),
        Table("campaigns.Autoresponder", "account_id = %(account)s"),
        Table(
            "campaigns.AutoresponderStep",
            "autoresponder_id IN "
            "(SELECT id FROM {campaigns_autoresponder} WHERE account_id = %(account)s)",
        ),
    ),
    HOURLY: (
        Table("members.Member", f"list_id IN ({LISTS})"),
        Table("campaigns.Delivery", f"campaign_id IN ({CAMPAIGNS})"),
        Table("campaigns.DeliveryActivity", f"delivery_id IN ({DELIVERIES})"),
        Table("campaigns.MemberActivity", f"member_id IN ({MEMBERS})"),
        Table("campaigns.CampaignStats", f"campaign_id IN ({CAMPAIGNS})"),
        Table("campaigns.LinkStats", f"campaign_id IN ({CAMPAIGNS})"),
        Table("campaigns.CampaignHourly", f"campaign_id IN ({CAMPAIGNS})"),
        Table("campaigns.Bounce", "account_id = %(account)s"),
        Table("campaigns.Unsubscribe", "account_id = %(account)s"),
        # Last: nothing refers to it and it refers to nothing, so a restore loads it on
        # a connection of its own, which is the only one that reads this far.
        Table("campaigns.TrackingEvent", f"campaign_id IN ({CAMPAIGNS})"),
    ),
}

# Restore order: every parent before its children.
ORDER: tuple[Table, ...] = SETS[THREE_HOURLY] + SETS[HOURLY]


def by_name() -> dict[str, Table]:
    return {t.name: t for t in ORDER}


def ordered(names: set[str] | list[str]) -> list[Table]:
    wanted = set(names)
    return [t for t in ORDER if t.name in wanted]


@dataclass(frozen=True)
class ForeignKey:
    column: str
    parent: str  # table name
    parent_column: str
    nullable: bool
    on_delete: Callable[..., None] | None


def foreign_keys(table: Table) -> list[ForeignKey]:
    out = []
    for field in table.model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey):
            target = field.target_field
            out.append(
                ForeignKey(
                    field.column,
                    str(field.related_model._meta.db_table),  # type: ignore[union-attr]
                    str(target.column),
                    bool(field.null),
                    field.remote_field.on_delete,
                )
            )
    return out


def account_condition(table: Table, names: Callable[[str], str]) -> str:
    """The table's account condition, its placeholders named by ``names``."""
    referenced = {t.name: names(t.name) for t in ORDER}
    return table.account.format(**referenced)


def other_account_condition(table: Table) -> str:
    """Rows that belong to another account (or to none, as staff users): the account
    condition with the account's id compared the other way. A row whose parent is gone
    belongs to nobody and matches neither."""
    return account_condition(table, lambda n: n).replace(
        "= %(account)s", "IS DISTINCT FROM %(account)s"
    )
