"""The dashboard shell: sign in, sign out, home, change password."""

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import services
from accounts.access import customer_view
from accounts.forms import OwnPasswordChangeForm, SignInForm
from accounts.models import Account, ApiKey, ApiScope, User
from members.forms import ApiKeyForm
from members.selectors import lists_for_account


class SignInView(auth_views.LoginView):
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


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # signed in: login_required
    if user.is_staff:
        # Staff work in the admin panel; entering a customer's dashboard on their
        # behalf needs the customer's consent (the audit and consent issue).
        return redirect("admin:index")
    account = user.account
    if account is None:  # cannot happen: a database constraint gives customers an account
        raise Http404
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
    services.apikey_revoke(api_key=api_key)
    messages.success(request, _("The key %(name)s was revoked.") % {"name": api_key.name})
    return redirect("accounts:api_keys")
