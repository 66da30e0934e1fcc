"""Bounces and complaints, from wherever they come: the relay's 5xx answer (the
pipeline), a returned DSN (the mail_receive command), an ESP's tracking webhook
(campaigns/signals.py).

A hard bounce or a complaint stops mail to the address in the whole account, on every
list that holds it; a soft bounce is only recorded. Nothing here ever makes a member
active again.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account
from campaigns.models import Bounce, BounceKind, Campaign, Delivery
from campaigns.unsubscribe import status_unless
from members.models import Member, MemberStatus, WebhookEvent
from members.webhook_delivery import webhook_lists, webhooks_emit_many

# What each kind makes of a member, and the statuses it leaves alone because they say
# as much or more (a complaint is not softened into a bounce).
SUPPRESS: dict[str, tuple[MemberStatus, tuple[MemberStatus, ...]]] = {
    BounceKind.HARD: (MemberStatus.BOUNCED, (MemberStatus.BOUNCED, MemberStatus.COMPLAINED)),
    BounceKind.COMPLAINT: (MemberStatus.COMPLAINED, (MemberStatus.COMPLAINED,)),
}
# The webhook event of each kind that suppresses (heyloyalty-api.md §8).
EVENTS = {
    BounceKind.HARD: WebhookEvent.HARDBOUNCE,
    BounceKind.COMPLAINT: WebhookEvent.SPAM_COMPLAINT,
}


@transaction.atomic
def bounce_record(
    *,
    account: Account,
    email: str,
    kind: BounceKind | str,
    source: str,
    reason: str,
    delivery: Delivery | None = None,
    member: Member | None = None,
    campaign: Campaign | None = None,
) -> Bounce:
    """Record a bounce or complaint and suppress the address in the account.

    The same kind for the same delivery is recorded once: an ESP retrying its webhook
    or a DSN arriving twice returns the first row.
    """
    kind = BounceKind(kind)
    email = email.strip().lower()
    member_id = member.pk if member else (delivery.member_id if delivery else None)
    campaign_id = campaign.pk if campaign else (delivery.campaign_id if delivery else None)
    if delivery is not None:
        # The row lock orders two copies of the same event, so the second finds the first.
        list(Delivery.objects.select_for_update().filter(pk=delivery.pk).values("pk"))
        first = Bounce.objects.filter(delivery_id=delivery.pk, kind=kind).first()
        if first is not None:
            return first
    bounce = Bounce.objects.create(
        account=account,
        campaign_id=campaign_id,
        delivery_id=delivery.pk if delivery else None,
        member_id=member_id,
        email=email,
        kind=kind,
        source=source[:32],
        reason=reason,
    )
    if kind in SUPPRESS:
        _suppress(account, email, member_id, kind, campaign_id)
    return bounce


def _suppress(
    account: Account, email: str, member_id: object, kind: BounceKind, campaign_id: int | None
) -> int:
    """Every member of the account with the address (and the named one) gets the status;
    the lists with a webhook for it hear of each member that changed.

    Addresses are stored lower-case (members.fields.clean_email), so an exact match on
    the lower-cased address is the case-insensitive one and can use the list's index.
    """
    new, stronger = SUPPRESS[kind]
    which = Q(email=email) if email else Q(pk__in=[])
    if member_id is not None:
        which |= Q(pk=member_id)
    found = Member.objects.filter(which, list__account=account, obscured_at__isnull=True).exclude(
        status__in=stronger, email_status__in=stronger
    )
    hooked = webhook_lists(account_id=account.pk, event=EVENTS[kind])
    told = (
        list(found.filter(list_id__in=hooked).select_for_update().values_list("pk", flat=True))
        if hooked
        else []
    )
    changed = found.update(
        status=status_unless("status", stronger, new),
        email_status=status_unless("email_status", stronger, new),
        updated_at=timezone.now(),
    )
    if told:
        webhooks_emit_many(
            event=EVENTS[kind],
            members=Member.objects.filter(pk__in=told).select_related("list"),
            extra={"campaign_id": campaign_id} if campaign_id else None,
        )
    return changed
