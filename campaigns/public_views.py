"""The recipient's pages: unsubscribe (RFC 8058 one-click and a page for people) and
the preferences of the account's lists.

No sign-in and no CSRF token: the signed token in the URL is the authority, and mail
clients POST the one-click body without cookies. A GET never changes anything, because
mail scanners follow every link. A bad token is a friendly 404, never a 500.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.tokens import UnsubscribeTarget, unsubscribe_read
from campaigns.unsubscribe import (
    RECEIVING,
    member_unsubscribe,
    preferences_for,
    preferences_update,
)
from heyloyalty.net import client_ip
from members.models import Member

ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def public_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The decorators every recipient page shares; search engines keep out of them."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return csrf_exempt(never_cache(require_http_methods(["GET", "HEAD", "POST"])(wrapped)))


def _member(target: UnsubscribeTarget) -> Member | None:
    """The member the token names; None once deleted or obscured."""
    members = Member.objects.select_related("list").filter(obscured_at__isnull=True)
    return members.filter(pk=target.member_id).first()


def _bad_link(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/unsubscribe_invalid.html", status=404)


def _is_one_click(request: HttpRequest) -> bool:
    """RFC 8058: the body ``List-Unsubscribe=One-Click``, form-encoded (Gmail, Apple Mail)
    or as multipart; a raw body without a content type is read as the same."""
    if request.content_type in FORM_TYPES:
        return request.POST.get("List-Unsubscribe") == "One-Click"
    return request.body[:64].strip() == ONE_CLICK_BODY


@public_page
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: ask. POST from a mail client (one-click): unsubscribe, answer in plain text.
    POST from the page's button: unsubscribe, confirm, offer the preferences."""
    target = unsubscribe_read(token)
    if target is None:
        return _bad_link(request)
    member = _member(target)
    if request.method != "POST":
        subscribed = member is not None and member.status in RECEIVING
        context = {"member": member, "token": token, "subscribed": subscribed}
        return render(request, "campaigns/unsubscribe.html", context)
    one_click = _is_one_click(request)
    if member is not None:  # a deleted member gets no more mail either: same answer
        source = "one-click" if one_click else "page"
        member_unsubscribe(member=member, campaign_id=target.campaign_id, source=source)
    if one_click:
        return HttpResponse(
            _("You are unsubscribed and will receive no more email from this list.") + "\n",
            content_type="text/plain; charset=utf-8",
        )
    return render(request, "campaigns/unsubscribe_done.html", {"member": member, "token": token})


def _list_ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit() and len(v) <= 18]


def _ip(request: HttpRequest) -> str | None:
    """The client's address for the consent record, if it is one."""
    try:
        return str(ipaddress.ip_address(client_ip(request)))
    except ValueError:
        return None


@public_page
def unsubscribe_preferences(request: HttpRequest, token: str) -> HttpResponse:
    """The account's lists that hold the recipient's address, each with a checkbox."""
    target = unsubscribe_read(token)
    member = _member(target) if target is not None else None
    if target is None or member is None:
        return _bad_link(request)
    if request.method == "POST":
        preferences_update(
            member=member,
            keep_list_ids=_list_ids(request.POST.getlist("list")),
            campaign_id=target.campaign_id,
            ip=_ip(request),
        )
        # Post/redirect/get: reloading the page does not send the form again.
        url = reverse("unsubscribe_preferences", kwargs={"token": token})
        return redirect(f"{url}?saved=1", permanent=False)
    context = {
        "member": member,
        "token": token,
        "choices": preferences_for(member=member),
        "saved": request.GET.get("saved") == "1",
    }
    return render(request, "campaigns/unsubscribe_preferences.html", context)
