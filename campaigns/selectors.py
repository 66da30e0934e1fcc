"""Reads of campaigns, their targets, recipients and deliveries, always scoped to an
account: another account's ids are a 404, like missing ones."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from accounts.models import Account
from campaigns import stats
from campaigns.errors import CampaignError
from campaigns.models import (
    Bounce,
    BounceKind,
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignTarget,
    Delivery,
    DeliveryStatus,
    SenderDomain,
    Unsubscribe,
)
from campaigns.templating import Rendered, compile_campaign
from campaigns.values import ValueMaker, fallbacks
from members.fields import FIXED_NAMES
from members.models import FieldFormat, List, Member, Segment
from members.schema import ListSchema
from members.selectors import segment_problem

# Never offered to a template: the member's password is not shown to anyone.
HIDDEN_FIELDS = frozenset({"password"})


@dataclass(frozen=True)
class Targets:
    """The ids a campaign is aimed at, as the API and the editor give them."""

    list_ids: tuple[int, ...] = ()
    segment_ids: tuple[int, ...] = ()
    exclude_list_ids: tuple[int, ...] = ()
    exclude_segment_ids: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.list_ids or self.segment_ids)


@dataclass(frozen=True)
class MergeFields:
    """The member fields a campaign's template may use, with each one's fallback."""

    names: frozenset[str]
    fallbacks: dict[str, str] = field(default_factory=dict)


# -- campaigns ---------------------------------------------------------------------------


def campaigns_for_account(*, account: Account, status: str | None = None) -> QuerySet[Campaign]:
    """The account's campaigns, newest first."""
    campaigns = Campaign.objects.filter(account=account, kind=CampaignKind.CAMPAIGN)
    if status:
        if status not in CampaignStatus.values:
            raise CampaignError({"status": _unknown_status(status, CampaignStatus.values)})
        campaigns = campaigns.filter(status=status)
    return campaigns.order_by("-created_at", "-id")


def campaign_get(*, account: Account, campaign_id: int | str) -> Campaign:
    """One of the account's campaigns; another account's id is a 404, like a missing one."""
    try:
        return Campaign.objects.select_related("account").get(account=account, pk=int(campaign_id))
    except (Campaign.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("campaign") from None


def campaign_targets(*, campaign: Campaign) -> Targets:
    rows = CampaignTarget.objects.filter(campaign=campaign).order_by("pk")
    found: dict[tuple[bool, bool], list[int]] = {}
    for target in rows.values("list_id", "segment_id", "exclude"):
        is_list = target["list_id"] is not None
        found.setdefault((is_list, target["exclude"]), []).append(
            target["list_id"] if is_list else target["segment_id"]
        )
    return Targets(
        list_ids=tuple(found.get((True, False), ())),
        segment_ids=tuple(found.get((False, False), ())),
        exclude_list_ids=tuple(found.get((True, True), ())),
        exclude_segment_ids=tuple(found.get((False, True), ())),
    )


def campaign_target_rows(*, campaign: Campaign) -> list[CampaignTarget]:
    """The targets with their lists and segments, for showing them by name."""
    return list(
        CampaignTarget.objects.filter(campaign=campaign)
        .select_related("list", "segment__list")
        .order_by("exclude", "pk")
    )


def verified_domains(*, account: Account) -> set[str]:
    return set(
        SenderDomain.objects.filter(account=account, verified=True).values_list("domain", flat=True)
    )


def segment_problem_text(*, segment: Segment) -> str | None:
    return segment_problem(segment=segment)


# -- recipients --------------------------------------------------------------------------


def _segments(account: Account, ids: tuple[int, ...]) -> list[Segment]:
    return list(Segment.objects.select_related("list").filter(list__account=account, pk__in=ids))


def campaign_recipients(*, campaign: Campaign) -> QuerySet[Member]:
    """The members a send of the campaign reaches right now, exactly as the pipeline
    writes its Delivery rows (one member per row; ``address`` is the lower-cased email)."""
    from campaigns.pipeline import recipients_query  # the one definition of who gets it

    return recipients_query(campaign)


def campaign_recipients_count(*, campaign: Campaign) -> int:
    """For a draft: how many addresses it would go to now (each address once). Fixed
    when the send starts; from then on it is ``campaign.recipients``."""
    found = campaign_recipients(campaign=campaign).aggregate(n=Count("address", distinct=True))
    return int(found["n"])


def preview_members(*, campaign: Campaign, limit: int = 20) -> list[Member]:
    """Some of the draft's recipients, one per address, to preview the message as."""
    recipients = campaign_recipients(campaign=campaign).select_related("list")
    return list(recipients.order_by("address", "pk").distinct("address")[:limit])


def account_member_get(*, account: Account, member_id: Any) -> Member:
    """A member on one of the account's lists; anyone else's (or a malformed id) is a 404."""
    try:
        return Member.objects.select_related("list").get(
            pk=str(member_id), list__account=account, obscured_at__isnull=True
        )
    except (Member.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404("member") from None


# -- merge fields ------------------------------------------------------------------------


def _target_lists(account: Account, targets: Targets) -> list[List]:
    """The lists the targets send to (lists, and the lists of segments), in order."""
    lists = {lst.pk: lst for lst in List.objects.filter(account=account, pk__in=targets.list_ids)}
    ordered = [lists[pk] for pk in targets.list_ids if pk in lists]
    ordered += [s.list for s in _segments(account, targets.segment_ids)]
    return list({lst.pk: lst for lst in ordered}.values())


def merge_fields_for(*, account: Account, targets: Targets) -> MergeFields:
    """The fields a template aimed at these targets may use: the standard fields, which
    every list has, and each target list's own; never a password. Fallbacks as the
    pipeline takes them (campaigns.values.fallbacks: the first list's wins)."""
    schemas = [ListSchema.load(lst, options=False) for lst in _target_lists(account, targets)]
    names = set(FIXED_NAMES) | {
        name
        for schema in schemas
        for name, field in schema.fields.items()
        if field.format != FieldFormat.PASSWORD
    }
    return MergeFields(frozenset(names - HIDDEN_FIELDS), fallbacks(schemas))


def campaign_merge_fields(*, campaign: Campaign) -> MergeFields:
    return merge_fields_for(account=campaign.account, targets=campaign_targets(campaign=campaign))


def member_values(*, member: Member, schema: ListSchema | None = None) -> dict[str, str]:
    """The member's fields as the text its merge tags print, keyed by field name: choice
    ids as their labels, dates in the list's format, never the password. The same
    ValueMaker the pipeline renders with, so a preview shows what the member will get."""
    maker = ValueMaker(schema or ListSchema.load(member.list))
    return maker.values(email=member.email, mobile=member.mobile, data=member.data)


def preview_render(
    *,
    account: Account,
    targets: Targets,
    subject: str,
    preheader: str,
    html: str,
    text: str,
    tracking: bool,
    member: Member | None,
) -> Rendered:
    """The message as ``member`` would get it (with the fallbacks when None), for content
    not necessarily saved yet (the editor previews as you type). Raises TemplateError."""
    merge = merge_fields_for(account=account, targets=targets)
    compiled = compile_campaign(
        subject=subject,
        preheader=preheader,
        html=html,
        text=text,
        field_names=merge.names,
        fallbacks=merge.fallbacks,
        tracking=tracking,
    )
    values = member_values(member=member) if member is not None else {}
    # Like a test send: no delivery to track, and an unsubscribe link that leads nowhere.
    return compiled.render(
        values=values, delivery_id=None, unsubscribe_url=f"{settings.PUBLIC_URL}/u/preview"
    )


def campaign_preview(*, campaign: Campaign, member: Member | None) -> Rendered:
    return preview_render(
        account=campaign.account,
        targets=campaign_targets(campaign=campaign),
        subject=campaign.subject,
        preheader=campaign.preheader,
        html=campaign.html,
        text=campaign.text,
        tracking=campaign.tracking,
        member=member,
    )


# -- deliveries --------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPage:
    items: list[Delivery]
    total: int
    page: int
    perpage: int

    @property
    def num_pages(self) -> int:
        return max(1, math.ceil(self.total / self.perpage))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.num_pages

    @property
    def has_other_pages(self) -> bool:
        return self.num_pages > 1

    @property
    def previous_page_number(self) -> int:
        return self.page - 1

    @property
    def next_page_number(self) -> int:
        return self.page + 1


def _unknown_status(status: str, known: list[str]) -> str:
    return _("%(status)s is not a status (%(known)s).") % {
        "status": status,
        "known": ", ".join(known),
    }


def deliveries_for_campaign(
    *,
    campaign: Campaign,
    status: str | None = None,
    page: int = 1,
    perpage: int = 50,
    counts: dict[str, int] | None = None,
) -> DeliveryPage:
    """The campaign's recipients in the order they were written, one page of them,
    optionally only those in one DeliveryStatus. ``counts`` (delivery_counts) spares
    counting them again."""
    deliveries = Delivery.objects.filter(campaign=campaign)
    if status:
        if status not in DeliveryStatus.values:
            raise CampaignError({"status": _unknown_status(status, DeliveryStatus.values)})
        deliveries = deliveries.filter(status=status)
    if counts is not None:
        total = counts.get(status, 0) if status else sum(counts.values())
    else:
        total = deliveries.count()
    page = max(1, page)
    start = (page - 1) * perpage
    return DeliveryPage(
        list(deliveries.order_by("id")[start : start + perpage]), total, page, perpage
    )


def delivery_counts(*, campaign: Campaign) -> dict[str, int]:
    """How many of the campaign's recipients are in each DeliveryStatus (every status
    present, zero when none). Once the send is over they change no more: counted once
    and kept with the campaign's statistics, so a report of a million recipients does
    not count them on every view."""
    counts = dict.fromkeys(DeliveryStatus.values, 0)
    kept = stats.kept_delivery_counts(campaign=campaign)
    if kept is not None:
        return {**counts, **kept}
    rows = Delivery.objects.filter(campaign=campaign).values("status").annotate(n=Count("id"))
    counts.update({row["status"]: row["n"] for row in rows})
    stats.keep_delivery_counts(campaign=campaign, counts=counts)
    return counts


def campaign_statistics(*, campaign: Campaign) -> dict[str, int | float]:
    """What came back from a campaign: bounces, complaints and unsubscribes (counted
    from their rows, a few per thousand recipients), opens and clicks, people's and
    machines' apart (from the tracking counters, campaigns/stats.py), and the rates."""
    bounces = dict(
        Bounce.objects.filter(campaign=campaign)
        .values("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
    )
    return stats.with_rates(
        {
            "sent": campaign.sent,
            "hard_bounces": bounces.get(BounceKind.HARD, 0),
            "soft_bounces": bounces.get(BounceKind.SOFT, 0),
            "complaints": bounces.get(BounceKind.COMPLAINT, 0),
            "unsubscribes": Unsubscribe.objects.filter(campaign=campaign).count(),
            **stats.tracking_counts(campaign=campaign),
        }
    )
