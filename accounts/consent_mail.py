"""The mail to an account's owners about an account manager's request for access."""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.consent import account_owners, link_deadline, link_url
from accounts.models import ACCESS_LINK_HOURS, AccessRequest, AccessRequestStatus
from heyloyalty.mail import build_message


def access_request_mail(*, access_request_id: int) -> int:
    """Mail each active owner the approve and deny links; returns how many were mailed
    (none once the request has been answered)."""
    access_request = (
        AccessRequest.objects.select_related("account", "manager")
        .filter(pk=access_request_id, status=AccessRequestStatus.PENDING)
        .first()
    )
    if access_request is None:
        return 0
    context = {
        "access_request": access_request,
        "account": access_request.account,
        "manager": access_request.manager,
        "approve_url": link_url(access_request, "approve"),
        "deny_url": link_url(access_request, "deny"),
        "page_url": settings.PUBLIC_URL + reverse("accounts:access"),
        "deadline": timezone.localtime(link_deadline(access_request)),
        "hours": ACCESS_LINK_HOURS,
    }
    subject = render_to_string("accounts/access_request_subject.txt", context).strip()
    text = render_to_string("accounts/access_request_email.txt", context)
    html = render_to_string("accounts/access_request_email.html", context)
    owners = account_owners(access_request.account)
    for owner in owners:
        build_message(to=[owner.email], subject=subject, text=text, html=html).send()
    return len(owners)
