"""Double opt-in: a signed confirmation link mailed to a new member of a list that asks
for it. Until the member clicks it, the member is unconfirmed and gets no campaigns."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from heyloyalty.mail import build_message
from members.models import Member, MemberStatus

SALT = "members.optin"
MAX_AGE = 60 * 60 * 24 * 30  # a confirmation link works for 30 days


def optin_token(member: Member) -> str:
    return signing.dumps(str(member.pk), salt=SALT, compress=True)


def optin_url(member: Member) -> str:
    return settings.PUBLIC_URL + reverse("optin_confirm", args=[optin_token(member)])


def optin_send(*, member_id: str) -> bool:
    """Mail the confirmation link; False when there is nothing to confirm."""
    member = Member.objects.select_related("list__account").filter(pk=member_id).first()
    if member is None or member.status != MemberStatus.UNCONFIRMED or not member.email:
        return False
    member_list = member.list
    context = {"list": member_list, "account": member_list.account, "url": optin_url(member)}
    sender = member_list.account.default_from_email or settings.DEFAULT_FROM_EMAIL
    name = member_list.account.default_from_name
    build_message(
        to=[member.email],
        subject=render_to_string("members/optin_subject.txt", context).strip(),
        text=render_to_string("members/optin_email.txt", context),
        html=render_to_string("members/optin_email.html", context),
        from_email=f"{name} <{sender}>" if name else sender,
    ).send()
    return True


def optin_confirm(*, token: str) -> Member | None:
    """Confirm the member the token names; None for a bad or expired token."""
    try:
        member_id = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature:
        return None
    with transaction.atomic():
        member = Member.objects.select_for_update().filter(pk=member_id).first()
        if member is None:
            return None
        if member.status == MemberStatus.UNCONFIRMED:
            member.status = member.email_status = MemberStatus.ACTIVE
            member.consent_at = timezone.now()
            member.consent_text = (member.consent_text + " (confirmed by email)").strip()
            member.save(update_fields=["status", "email_status", "consent_at", "consent_text"])
    return member


def optin_queue(member: Member) -> None:
    """Send after commit, from a worker: never mail inside a transaction."""
    if member.status != MemberStatus.UNCONFIRMED:
        return
    from members.tasks import send_optin

    member_id = str(member.pk)
    transaction.on_commit(lambda: send_optin.delay(member_id))
