"""The pages of two-factor sign-in (accounts/two_factor.py): the code step, adding an
authenticator app, the user's own setting, and the admin panel's sign-in form."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from accounts import two_factor
from accounts.models import User


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("6-digit code"),
        max_length=12,
        strip=True,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "autofocus": True,
                "pattern": "[0-9 ]*",
            }
        ),
        help_text=gettext_lazy("From the authenticator app on your phone."),
    )


class SecondFactorMixin:
    """A sign-in form view whose right password leads to the code, not into the app."""

    request: HttpRequest

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        if two_factor.required(user):
            return two_factor.begin(self.request, user, next_url=self.get_success_url())  # type: ignore[attr-defined]
        return super().form_valid(form)  # type: ignore[misc]


def _wrong_code(
    request: HttpRequest,
    user: User,
    data: dict[str, Any],
    form: CodeForm,
    check: two_factor.CodeCheck,
    step: str,
) -> HttpResponse | None:
    """Audit it and count it; the last try allowed ends the attempt (and a session that
    was signed in already: the password must be given again)."""
    last = two_factor.count_failure(request, data)
    two_factor.failure_record(request, user, check=check, step=step, tries=data["tries"])
    if last:
        if request.user.is_authenticated:
            logout(request)
        messages.error(request, _("Too many wrong codes. Sign in again."))
        return redirect("accounts:login")
    if check.wait_seconds:
        form.add_error("code", _wait_text(check.wait_seconds))
    else:
        form.add_error(
            "code", _("That code is not right. Check the time on your phone and try again.")
        )
    return None


def _settings_refused(
    request: HttpRequest, user: User, form: CodeForm, check: two_factor.CodeCheck, step: str
) -> None:
    """A wrong code on the settings page (turning it on or off): audited as at sign-in."""
    two_factor.failure_record(request, user, check=check, step=step)
    if check.wait_seconds:
        form.add_error("code", _wait_text(check.wait_seconds))
    else:
        form.add_error("code", _("That code is not right. Check the time on your phone."))


def _wait_text(seconds: int) -> str:
    return ngettext(
        "Too many wrong codes. Wait %(seconds)d second, then try again.",
        "Too many wrong codes. Wait %(seconds)d seconds, then try again.",
        seconds,
    ) % {"seconds": seconds}


def _start_again(request: HttpRequest) -> HttpResponse:
    messages.info(request, _("Please sign in again: that took too long."))
    return redirect("accounts:login")


def _halfway(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    """Who is signing in: after the password, or a session that still needs its code."""
    return two_factor.pending(request) or two_factor.resume(request)


@never_cache
@sensitive_post_parameters("code")
def verify(request: HttpRequest) -> HttpResponse:
    found = _halfway(request)
    if found is None:
        return _start_again(request)
    user, data = found
    device = two_factor.confirmed_device(user)
    if device is None:
        return redirect("two_factor:setup")
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        check = two_factor.code_check(device, form.cleaned_data["code"])
        if check.ok:
            return two_factor.finish(request, user, device, data)
        if (answer := _wrong_code(request, user, data, form, check, "verify")) is not None:
            return answer
        status = 429 if check.wait_seconds else 200
    return render(
        request, "accounts/two_factor_verify.html", {"form": form, "person": user}, status=status
    )


@never_cache
@sensitive_post_parameters("code")
def setup(request: HttpRequest) -> HttpResponse:
    """Staff without an app add one before they are signed in."""
    found = _halfway(request)
    if found is None:
        return _start_again(request)
    user, data = found
    if two_factor.confirmed_device(user) is not None:
        return redirect("two_factor:verify")
    device = two_factor.unconfirmed_device(user)
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        check = two_factor.code_check(device, form.cleaned_data["code"])
        if check.ok:
            two_factor.device_confirm(device=device)
            return two_factor.finish(request, user, device, data)
        if (answer := _wrong_code(request, user, data, form, check, "setup")) is not None:
            return answer
        status = 429 if check.wait_seconds else 200
    return render(
        request,
        "accounts/two_factor_setup.html",
        {
            "form": form,
            "person": user,
            "qr": two_factor.qr_data_uri(device),
            "secret": two_factor.secret_text(device),
        },
        status=status,
    )


@login_required
@never_cache
@sensitive_post_parameters("code")
def settings_page(request: HttpRequest) -> HttpResponse:
    """Turn it on (add an app: QR code, then a code) or, for customers, off (a code)."""
    user = cast(User, request.user)
    device = two_factor.confirmed_device(user)
    action = request.POST.get("action", "") if request.method == "POST" else ""
    form = CodeForm(request.POST if action in {"confirm", "off"} else None)
    adding = None
    if action == "start" and device is None:
        adding = two_factor.new_device(user)
    elif action == "confirm" and device is None:
        adding = two_factor.unconfirmed_device(user)
        if form.is_valid():
            check = two_factor.code_check(adding, form.cleaned_data["code"])
            if check.ok:
                two_factor.device_confirm(device=adding)
                otp_login(request, adding)  # this session has just given a code
                messages.success(request, _("Two-factor sign-in is on."))
                return redirect("two_factor:settings")
            _settings_refused(request, user, form, check, "turn_on")
    elif action == "off" and device is not None and not user.is_staff and form.is_valid():
        check = two_factor.code_check(device, form.cleaned_data["code"])
        if check.ok:
            two_factor.devices_remove(user=user)
            messages.success(request, _("Two-factor sign-in is off."))
            return redirect("two_factor:settings")
        _settings_refused(request, user, form, check, "turn_off")
    context: dict[str, Any] = {"device": device, "form": form, "adding": adding}
    if adding is not None:
        context.update(qr=two_factor.qr_data_uri(adding), secret=two_factor.secret_text(adding))
    return render(request, "accounts/two_factor_settings.html", context)


class AdminSignInView(SecondFactorMixin, auth_views.LoginView):
    pass


@never_cache
def admin_login(
    request: HttpRequest, extra_context: dict[str, Any] | None = None
) -> HttpResponseBase:
    """AdminSite.login, with the second factor: the same page and form."""
    site = admin.site
    if request.method == "GET" and site.has_permission(request):
        return HttpResponseRedirect(reverse("admin:index", current_app=site.name))
    context = {
        **site.each_context(request),
        "title": _("Log in"),
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=site.name)
    context.update(extra_context or {})
    request.current_app = site.name
    return AdminSignInView.as_view(
        extra_context=context,
        authentication_form=site.login_form or AdminAuthenticationForm,
        template_name=site.login_template or "admin/login.html",
    )(request)
