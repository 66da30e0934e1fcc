"""The dashboard shell: sign in, sign out, home, change password."""

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import access_log, acting, consent, services
from accounts.access import customer_view
from accounts.consent_forms import ApproveForm, ConsentSettingForm, DecisionForm
from accounts.forms import OwnPasswordChangeForm, SignInForm
from accounts.models import (
    AccessGrant,
    AccessRequest,
    Account,
    ApiKey,
    ApiScope,
    ManagerAccess,
    Role,
    User,
)
from accounts.two_factor_views import SecondFactorMixin
from members.exports import csv_download
from members.forms import ApiKeyForm
from members.selectors import lists_for_account


class SignInView(SecondFactorMixin, auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # Sent here from a page that needs a session: it ended or never began.
        context["session_needed"] = bool(self.request.GET.get("next"))
        return context


class SignOutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    form_class = OwnPasswordChangeForm
    success_url = reverse_lazy("accounts:home")

    def form_valid(self, form: OwnPasswordChangeForm) -> HttpResponse:
        form.save()
        update_session_auth_hash(self.request, form.user)
        messages.success(self.request, _("Your password has been changed."))
        return redirect(self.get_success_url())


@customer_view()
def home(request: HttpRequest, account: Account) -> HttpResponse:
    # Staff are sent to the admin panel unless working here on the customer's behalf
    # (customer_view), which needs the customer's consent (accounts/consent.py).
    lists = list(lists_for_account(account=account))
    return render(
        request,
        "accounts/home.html",
        {
            "account": account,
            "lists": lists,
            "member_total": sum(lst.member_count for lst in lists),  # type: ignore[attr-defined]
        },
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A forged or stale CSRF token: say what to do, never a bare 403."""
    return render(request, "csrf_failure.html", status=403)


@customer_view(owner_only=True)
def api_keys(request: HttpRequest, account: Account) -> HttpResponse:
    """The account's API keys. A new key's secret is shown once, on this response only."""
    form = ApiKeyForm(request.POST or None)
    new_secret = new_key = None
    if request.method == "POST" and form.is_valid():
        new_key, new_secret = services.apikey_create(
            account=account,
            name=form.cleaned_data["name"],
            scope=ApiScope.READ if form.cleaned_data["read_only"] else ApiScope.READ_WRITE,
            created_by=cast(User, request.user),
        )
        form = ApiKeyForm()
    response = render(
        request,
        "accounts/api_keys.html",
        {
            "keys": ApiKey.objects.filter(account=account).select_related("created_by"),
            "form": form,
            "new_key": new_key,
            "new_secret": new_secret,
        },
    )
    if new_secret:
        add_never_cache_headers(response)
    return response


@customer_view(owner_only=True)
@require_POST
def api_key_revoke(request: HttpRequest, account: Account, key_id: int) -> HttpResponse:
    api_key = ApiKey.objects.filter(account=account, pk=key_id).first()
    if api_key is None:
        raise Http404
    services.apikey_revoke(api_key=api_key, revoked_by=cast(User, request.user))
    messages.success(request, _("The key %(name)s was revoked.") % {"name": api_key.name})
    return redirect("accounts:api_keys")


# -- Access to your account (consent and the log of staff access) ----------------------

ACCESS_PAGE_SIZE = 50


@customer_view(owner_only=True)
def access(request: HttpRequest, account: Account) -> HttpResponse:
    """Every access by our staff, pending requests, active grants, the consent setting
    (changed by POST here)."""
    if request.method == "POST":
        return _access_setting(request, account)
    kind = request.GET.get("kind", "")
    if kind not in access_log.KINDS:
        kind = ""
    page = Paginator(access_log.events_for(account, kind), ACCESS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    events = list(page.object_list)
    grants = access_log.grants_of(account, events)
    return render(
        request,
        "accounts/access.html",
        {
            "account": account,
            "page": page,
            "rows": [
                (
                    e,
                    access_log.action_label(e.action),
                    grants.get(e.grant_id or 0),
                    access_log.reason_label(e),
                )
                for e in events
            ],
            "kind": kind,
            "kinds": [(name, label) for name, (label, _q) in access_log.KINDS.items()],
            "pending": list(consent.access_requests_pending(account=account)),
            "working": acting.acting_sessions_open(account),
            "grants": list(
                AccessGrant.objects.filter(
                    account=account, revoked_at__isnull=True, expires_at__gt=timezone.now()
                ).select_related("manager", "request")
            ),
            "setting_form": ConsentSettingForm(initial={"manager_access": account.manager_access}),
            "approve_form": ApproveForm(),
            "manager": account.manager,
        },
    )


def _access_setting(request: HttpRequest, account: Account) -> HttpResponse:
    form = ConsentSettingForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("manager_access", []):
            messages.error(request, str(error))
        return redirect("accounts:access")
    changed = consent.manager_access_set(
        account=account,
        value=ManagerAccess(form.cleaned_data["manager_access"]),
        by=cast(User, request.user),
        request=request,
    )
    if changed and account.manager_access == ManagerAccess.ASK:
        messages.success(request, _("Saved. Your account manager must now ask you first."))
    elif changed:
        messages.success(request, _("Saved. Your account manager may now work in your account."))
    return redirect("accounts:access")


@customer_view(owner_only=True)
def access_export(request: HttpRequest, account: Account) -> StreamingHttpResponse:
    kind = request.GET.get("kind", "")
    stamp = timezone.localtime().strftime("%Y-%m-%d")
    return csv_download(access_log.csv_rows(account, kind), f"staff-access-{stamp}.csv")


@customer_view(owner_only=True)
@require_POST
def access_request_decide(request: HttpRequest, account: Account, request_id: int) -> HttpResponse:
    access_request = get_object_or_404(
        AccessRequest.objects.select_related("account", "manager"), account=account, pk=request_id
    )
    form = DecisionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("accounts:access")
    try:
        message = _decide(request, access_request, form.cleaned_data)
    except consent.ConsentError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, message)
    return redirect("accounts:access")


def _decide(request: HttpRequest, access_request: AccessRequest, data: dict[str, Any]) -> str:
    """Approve or deny; the message for the owner. Raises ConsentError."""
    owner = cast(User, request.user)
    manager = access_request.manager.get_full_name()
    if data["decision"] == "approve":
        grant = consent.access_request_approve(
            access_request=access_request, by=owner, hours=data["hours"], request=request
        )
        until = date_format(timezone.localtime(grant.expires_at), "DATETIME_FORMAT")
        return _("%(manager)s has access until %(until)s. You can revoke it at any time.") % {
            "manager": manager,
            "until": until,
        }
    consent.access_request_deny(access_request=access_request, by=owner, request=request)
    return _("You denied %(manager)s access.") % {"manager": manager}


@customer_view(owner_only=True)
@require_POST
def access_grant_revoke(request: HttpRequest, account: Account, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(
        AccessGrant.objects.select_related("manager"), account=account, pk=grant_id
    )
    if consent.access_grant_revoke(grant=grant, by=cast(User, request.user), request=request):
        messages.success(
            request,
            _("Access revoked: %(manager)s can no longer work in your account.")
            % {"manager": grant.manager.get_full_name()},
        )
    else:
        messages.info(request, _("That access had already ended."))
    return redirect("accounts:access")


def access_link(request: HttpRequest, token: str) -> HttpResponse:
    """The approve or deny link from the mail.

    1. A forged, expired or used link is refused with a page that says which, and logged.
    2. Otherwise the decision needs an owner of the account signed in: the link alone is
       not enough (mail is forwarded, and read on shared screens), so sign-in comes first
       and brings the owner back here.
    3. GET shows the request; POST decides it (approve: for how long).
    """
    link = consent.link_check(token)
    if link.refused:
        consent.link_refused_record(link=link, request=request)
        return _link_refused(request, link.refused, status=400 if link.refused == "forged" else 410)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    user = request.user
    access_request = link.access_request
    assert access_request is not None  # noqa: S101 - link_check gives one unless refused
    if user.role != Role.OWNER or user.account_id != access_request.account_id:
        consent.link_refused_record(link=link, request=request, why="not_owner")
        return _link_refused(request, "not_owner", status=403)
    form = ApproveForm(request.POST or None) if link.action == "approve" else None
    if request.method == "POST" and (form is None or form.is_valid()):
        data = {"decision": link.action, "hours": form.cleaned_data["hours"] if form else None}
        try:
            message = _decide(request, access_request, data)
        except consent.ConsentError as error:
            consent.link_refused_record(link=link, request=request, why=error.code)
            return _link_refused(request, error.code, status=409, message=error.message)
        messages.success(request, message)
        return redirect("accounts:access")
    return render(
        request,
        "accounts/access_link.html",
        {
            "access_request": access_request,
            "account": access_request.account,
            "action": link.action,
            "form": form,
            "deadline": consent.link_deadline(access_request),
        },
    )


def _link_refused(
    request: HttpRequest, why: str, *, status: int, message: str = ""
) -> HttpResponse:
    return render(
        request,
        "accounts/access_link_refused.html",
        {"why": why, "message": message},
        status=status,
    )


@login_required
@require_POST
def acting_end(request: HttpRequest) -> HttpResponse:
    """The banner's End now button: back to the admin panel."""
    user = cast(User, request.user)
    account = acting.acting_end(request=request, user=user, reason="ended")
    if account is None:
        return redirect("admin:index" if user.is_staff else "accounts:home")
    messages.success(request, acting.end_message("ended", account))
    return redirect("admin:accounts_account_changelist")
