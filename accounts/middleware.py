from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

# Pages for mail recipients, not for the signed-in user: never in the way.
RECIPIENT_PAGES = ("/u/", "/optin/", "/static/")


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
