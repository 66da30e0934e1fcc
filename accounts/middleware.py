from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django.utils.translation import gettext as _

# Pages for mail recipients, not for the signed-in user: never in the way.
RECIPIENT_PAGES = ("/u/", "/optin/", "/static/")


class TwoFactorRequiredMiddleware:
    """Sends a signed-in user who needs the second factor (staff always; a customer who
    turned it on) but whose session has not given it to the code page: a session signed
    in with the password alone, from before the user became staff or turned it on,
    reaches nothing else. Pages answer a redirect (``?next=`` the page), the API and
    scripts that ask for JSON a 403 with a JSON body.

    Open to such a session: signing in and out, the code pages, the public pages
    (recipients' links, tracking, opt-in, ESP webhooks, API docs), health checks, static
    files and the language switch. After django_otp's OTPMiddleware, which tells whether
    the session gave the code; before anything that acts for the user.
    """

    OPEN = frozenset(
        {
            "accounts:login",
            "accounts:logout",
            "two_factor:verify",
            "two_factor:setup",
            "admin:login",
            "admin:logout",
            "healthz",
            "readyz",
            "set_language",
            "javascript-catalog",
            "optin_confirm",
            "unsubscribe",
            "unsubscribe_preferences",
            "tracking_open",
            "tracking_click",
            "api-schema",
            "api-docs",
        }
    )
    OPEN_NAMESPACES = frozenset({"anymail"})
    API_PREFIXES = ("/loyalty/",)

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from accounts import two_factor

        if two_factor.needs_code(request) and not self._open(request):
            return self._refuse(request)
        return self.get_response(request)

    def _open(self, request: HttpRequest) -> bool:
        if settings.STATIC_URL and request.path.startswith(settings.STATIC_URL):
            return True
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return False
        return match.view_name in self.OPEN or bool(self.OPEN_NAMESPACES & set(match.namespaces))

    def _refuse(self, request: HttpRequest) -> HttpResponse:
        verify = reverse("two_factor:verify")
        if self._wants_json(request):
            return JsonResponse(
                {
                    "error": "two_factor_required",
                    "message": _("Give the code from your authenticator app first."),
                    "verify_url": verify,
                },
                status=403,
            )
        return redirect(f"{verify}?{urlencode({'next': request.get_full_path()})}")

    def _wants_json(self, request: HttpRequest) -> bool:
        if request.path.startswith(self.API_PREFIXES):
            return True
        accept = request.headers.get("Accept", "")
        json_body = request.content_type == "application/json"
        return json_body or ("application/json" in accept and "text/html" not in accept)


class PasswordChangeRequiredMiddleware:
    """Sends a user whose password someone else set to choose their own first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and getattr(user, "must_change_password", False):
            target = reverse("accounts:password_change")
            allowed = (target, reverse("accounts:logout"), reverse("set_language"))
            if request.path not in allowed and not request.path.startswith(RECIPIENT_PAGES):
                messages.info(request, _("Please choose a new password before you go on."))
                return redirect(target)
        return self.get_response(request)


class ActingAsMiddleware:
    """Sets ``request.acting_account`` and ``request.acting_grant`` while a member of
    staff works in a customer's dashboard on their behalf (accounts/acting.py), and ends
    that session when its time, its idle time or its access is over.

    After the authentication middleware, before the audit middleware, which logs each
    dashboard page of the session as "impersonation.page".
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.acting_account = None  # type: ignore[attr-defined]
        request.acting_grant = None  # type: ignore[attr-defined]
        request.acting = None  # type: ignore[attr-defined]
        if not request.path.startswith(RECIPIENT_PAGES):
            self._resume(request)
        return self.get_response(request)

    def _resume(self, request: HttpRequest) -> None:
        from accounts.acting import SESSION_KEY, Acting, acting_resume, end_message

        user = request.user
        if not user.is_authenticated or not getattr(user, "is_staff", False):
            return
        if SESSION_KEY not in request.session:
            return
        state = acting_resume(request, user)
        if isinstance(state, Acting):
            request.acting_account = state.account  # type: ignore[attr-defined]
            request.acting_grant = state.grant  # type: ignore[attr-defined]
            request.acting = state  # type: ignore[attr-defined]
        elif state is not None:
            messages.warning(request, end_message(state.reason, state.account))
