"""Every request by staff that touches a customer account's data is checked and logged.

Staff are main admins and account managers. Before the view runs, the middleware works
out which account the request touches (audit/scope.py for admin pages; the account of
a sign-in-as session for dashboard pages) and asks ``accounts.consent.staff_access``:

* refused: the view does not run; the answer is 403 with a page that says why and how
  to ask for access, and "access.refused" is recorded. A manager not assigned to the
  account is the exception: the admin's own scoping answers as for an id that does not
  exist (404), so nothing about the account leaks, and "access.refused" is recorded;
* allowed: the view runs and one event is recorded with the response's status and the
  grant used ("admin.view", "admin.change", "admin.list", …, "impersonation.page").

An admin action on rows ticked in a list is checked against the account of every row,
and logged once for each account. A list of several accounts is logged without an
account (the admin's scoping shows a manager only the accounts assigned to them).

A view that records its own event for the request (a consent decision, the start of a
sign-in-as session) is not logged a second time. A staff session calling the API is
logged as "api.request": the API authenticates API keys only, so it answers such a
request without any account's data, and the attempt is on record.

Customers and visitors cost next to nothing here: outside the admin panel, the API and
a sign-in-as session the user is not even looked up, and neither is it for a request
without a session cookie.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import ResolverMatch
from django.utils.translation import gettext as _

from accounts.models import Account, User
from audit.scope import Scope, admin_scope
from audit.services import record

API_PATH = re.compile(r"^/(loyalty|reseller|tools)(/|$)")
# Not pages of the dashboard: no account data behind them.
NOT_PAGES = frozenset({"javascript-catalog", "set_language", "healthz"})


@dataclass(frozen=True)
class _Pending:
    scope: Scope
    actor: User
    grant: Any = None
    why: str = ""
    refused: bool = False


class StaffAuditMiddleware:
    """After authentication and the sign-in-as middleware (settings.MIDDLEWARE)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        pending: list[_Pending] = getattr(request, "_audit_pending", [])
        if pending and not getattr(request, "_audit_recorded", False):
            for one in pending:
                scope = one.scope
                record(
                    "access.refused" if one.refused else scope.action,
                    # Who signed in: the API puts its own client in request.user.
                    actor=one.actor,
                    account=scope.account_id,
                    target=scope.target,
                    target_type=scope.target_type,
                    target_id=scope.target_id,
                    request=request,
                    status=response.status_code,
                    grant=one.grant,
                    reason=one.why if one.refused else "",
                    extra=_extra(one),
                )
        return response

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None  # no session, no staff
        match = cast(ResolverMatch, request.resolver_match)
        if not _may_touch_an_account(request, match):
            return None  # decided without loading the user (recipients' pages, say)
        user = request.user
        if not user.is_authenticated or not getattr(user, "is_staff", False):
            return None
        scope = _scope(request, match)
        if scope is None:
            return None
        # Logged without a check: a page for asking for access, a list of several
        # accounts, an id that finds nothing (the view says so).
        accounts = _accounts(scope) if scope.check else []
        if not accounts:
            request._audit_pending = [_Pending(scope, user)]  # type: ignore[attr-defined]
            return None
        from accounts.consent import staff_access

        pending = []
        for account in accounts:
            # An action on rows of several accounts: one event for each account.
            mine = scope if len(accounts) == 1 else replace(scope, account_id=account.pk)
            access = staff_access(user, account)
            if access.allowed:
                pending.append(_Pending(mine, user, access.grant, access.why))
            elif access.why == "not_assigned":
                # Another manager's account: the admin's own scoping answers as if it did
                # not exist (404, "not found", a form error), so that nothing about it
                # leaks; the attempt is logged as refused.
                pending.append(_Pending(mine, user, None, access.why, refused=True))
            else:
                return _refuse(request, user, account, mine, access)
        request._audit_pending = pending  # type: ignore[attr-defined]
        return None


def _accounts(scope: Scope) -> list[Account]:
    if scope.account is not None:
        return [scope.account]
    if scope.accounts:
        return list(Account.objects.filter(pk__in=scope.accounts).order_by("pk"))
    if scope.account_id is None:
        return []
    return list(Account.objects.filter(pk=scope.account_id))


def _extra(pending: _Pending) -> dict[str, Any] | None:
    if pending.refused:
        return {"tried": pending.scope.action}
    return {"access": pending.why} if pending.why else None


def _may_touch_an_account(request: HttpRequest, match: ResolverMatch) -> bool:
    return (
        match.app_name == "admin"
        or API_PATH.match(request.path_info) is not None
        or getattr(request, "acting_account", None) is not None
    )


def _scope(request: HttpRequest, match: ResolverMatch) -> Scope | None:
    if match.app_name == "admin":
        return admin_scope(request, match)
    if API_PATH.match(request.path_info):
        return Scope("api.request", None)
    acting: Account | None = getattr(request, "acting_account", None)
    if acting is not None and match.view_name not in NOT_PAGES:
        return Scope(
            "impersonation.page", acting.pk, None, "page", match.view_name[:64], account=acting
        )
    return None


def _refuse(
    request: HttpRequest, user: User, account: Account, scope: Scope, access: Any
) -> HttpResponse:
    from accounts.consent import refusal_message, request_access_url

    record(
        "access.refused",
        actor=user,
        account=account,
        target=scope.target,
        target_type=scope.target_type,
        target_id=scope.target_id,
        request=request,
        status=403,
        reason=access.why,
        extra={"tried": scope.action},
    )
    can_ask = user.is_manager and access.why in ("no_grant", "expired", "revoked")
    return render(
        request,
        "audit/access_refused.html",
        {
            **admin.site.each_context(request),
            "message": refusal_message(access),
            "request_url": request_access_url(account) if can_ask else "",
            # Never the account's name: a manager not assigned to it must learn nothing.
            "title": _("Access needs the customer's approval"),
        },
        status=403,
    )
