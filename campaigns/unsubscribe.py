"""Members leaving lists: the one-click header (RFC 8058), the unsubscribe page, the
mailto address, an ESP's unsubscribe event, and the preferences page.

A recipient acts with a signed token (campaigns/tokens.py), never with a session, so
every function here takes the member the token names and touches nothing outside that
member's account. Each change is a conditional UPDATE: repeating it finds nothing to do
and writes nothing, so a mail client that POSTs twice counts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from campaigns.models import Campaign, Unsubscribe
from members.models import Member, MemberStatus, WebhookEvent
from members.webhook_delivery import webhooks_emit

# Statuses that receive campaigns; only these can be unsubscribed.
RECEIVING = (MemberStatus.ACTIVE, MemberStatus.UNCONFIRMED)
# Statuses a recipient can never undo: the address is dead or they called us spam.
BLOCKED = (MemberStatus.BOUNCED, MemberStatus.COMPLAINED)


def status_unless(column: str, keep: Iterable[str], new: str) -> Case:
    """``column`` becomes ``new`` unless it holds one of ``keep``."""
    return Case(When(**{f"{column}__in": list(keep)}, then=F(column)), default=Value(new))


def _campaign_id(account_id: int, campaign_id: int | None) -> int | None:
    """The campaign, if it still exists in the member's account (a token outlives it)."""
    if not campaign_id:
        return None
    found = Campaign.objects.filter(pk=campaign_id, account_id=account_id)
    return found.values_list("pk", flat=True).first()


@transaction.atomic
def member_unsubscribe(*, member: Member, campaign_id: int | None, source: str) -> bool:
    """Unsubscribe the member (status and email status); True when this changed it.

    A bounced or complained member stays so: unsubscribing must not turn a dead address
    into one its owner could re-subscribe from the preferences page.
    """
    now = timezone.now()
    changed = (
        Member.objects.filter(pk=member.pk, obscured_at__isnull=True)
        .filter(Q(status__in=RECEIVING) | Q(email_status__in=RECEIVING))
        .update(
            status=status_unless("status", BLOCKED, MemberStatus.UNSUBSCRIBED),
            email_status=status_unless("email_status", BLOCKED, MemberStatus.UNSUBSCRIBED),
            updated_at=now,
        )
    )
    if not changed:
        return False
    account_id = member.list.account_id
    credited = _campaign_id(account_id, campaign_id)
    # created_at equals the member's updated_at: preferences_update reads that as "the
    # last change to this member was its own unsubscribe".
    Unsubscribe.objects.create(
        account_id=account_id,
        campaign_id=credited,
        member_id=member.pk,
        list_id=member.list_id,
        source=source[:32],
        created_at=now,
    )
    member.refresh_from_db(fields=["status", "email_status", "updated_at"])
    webhooks_emit(
        member_list_id=member.list_id,
        event=WebhookEvent.UNSUBSCRIBE,
        members=[member],
        extra={"campaign_id": credited} if credited else None,
    )
    return True


# ----------------------------------------------------------------- preferences


@dataclass(frozen=True)
class ListChoice:
    """One of the account's lists that holds the recipient's address."""

    list_id: int
    name: str
    subscribed: bool
    # False: shown but not editable (bounced, complained, or left by someone else's hand).
    changeable: bool


@dataclass(frozen=True)
class PreferencesResult:
    unsubscribed: list[int]  # list ids, each once
    resubscribed: list[int]


def _same_person(member: Member) -> QuerySet[Member]:
    """The members of the account with the token member's address, with ``resubscribable``.

    A member without an address (mobile only) is only itself: an empty email must not
    match every other mobile-only member of the account.
    """
    members = Member.objects.filter(obscured_at__isnull=True)
    if member.email:
        members = members.filter(list__account_id=member.list.account_id, email=member.email)
    else:
        members = members.filter(pk=member.pk)
    own_leaving = Unsubscribe.objects.filter(
        member_id=OuterRef("pk"), created_at__gte=OuterRef("updated_at")
    )
    return members.select_related("list").annotate(resubscribable=Exists(own_leaving))


def _can_resubscribe(member: Member) -> bool:
    """Only a member this person unsubscribed themselves, untouched since."""
    return (
        member.status == MemberStatus.UNSUBSCRIBED
        and member.email_status not in BLOCKED
        and bool(getattr(member, "resubscribable", False))
    )


def preferences_for(*, member: Member) -> list[ListChoice]:
    """The recipient's lists in this account, by name, for the preferences page."""
    by_list: dict[int, list[Member]] = {}
    for each in _same_person(member).order_by("list__name", "list_id"):
        by_list.setdefault(each.list_id, []).append(each)
    choices = []
    for members in by_list.values():
        subscribed = any(m.status in RECEIVING for m in members)
        choices.append(
            ListChoice(
                list_id=members[0].list_id,
                name=members[0].list.name,
                subscribed=subscribed,
                changeable=subscribed or any(_can_resubscribe(m) for m in members),
            )
        )
    return choices


def _resubscribe(member: Member, now: datetime, ip: str | None) -> bool:
    """Active again, with this as the consent; conditional like every status change.
    The list's webhooks hear ``subscribe``, with the member as it is now."""
    consent: dict[str, object] = {"consent_source": "preferences", "consent_at": now}
    if ip:
        consent["consent_ip"] = ip
    changed = (
        Member.objects.filter(
            pk=member.pk,
            status=MemberStatus.UNSUBSCRIBED,
            updated_at=member.updated_at,
            obscured_at__isnull=True,
        )
        .exclude(email_status__in=BLOCKED)
        .update(
            status=MemberStatus.ACTIVE, email_status=MemberStatus.ACTIVE, updated_at=now, **consent
        )
    )
    if not changed:
        return False
    member.status = member.email_status = MemberStatus.ACTIVE
    member.updated_at = now
    for name, value in consent.items():
        setattr(member, name, value)
    webhooks_emit(member_list_id=member.list_id, event=WebhookEvent.SUBSCRIBE, members=[member])
    return True


@transaction.atomic
def preferences_update(
    *,
    member: Member,
    keep_list_ids: Iterable[int],
    campaign_id: int | None = None,
    ip: str | None = None,
) -> PreferencesResult:
    """Save the preferences page.

    1. Lists not in ``keep_list_ids``: every member of this person on them is
       unsubscribed (source "preferences"; the campaign is credited only for the member
       the token names, the one who received it).
    2. Lists in ``keep_list_ids`` where the person is unsubscribed: re-subscribed, but only
       members they unsubscribed themselves; bounced and complained stay.
    Each change is the list's webhook event, ``unsubscribe`` or ``subscribe``, written in
    this transaction.
    Lists of the account that do not hold this person's address are ignored.
    """
    keep = set(keep_list_ids)
    now = timezone.now()
    unsubscribed: set[int] = set()
    resubscribed: set[int] = set()
    for each in _same_person(member).order_by("list_id", "pk"):
        if each.list_id not in keep:
            credited = campaign_id if each.pk == member.pk else None
            if member_unsubscribe(member=each, campaign_id=credited, source="preferences"):
                unsubscribed.add(each.list_id)
        elif _can_resubscribe(each) and _resubscribe(each, now, ip):
            resubscribed.add(each.list_id)
    return PreferencesResult(sorted(unsubscribed), sorted(resubscribed))
