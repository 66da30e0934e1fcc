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
