"""The dashboard shell: sign in, sign out, home, change password."""

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _

from accounts.forms import OwnPasswordChangeForm, SignInForm
from accounts.models import User
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
