"""Sign-ins, sign-outs and failed sign-ins, from Django's auth signals.

django-axes counts failures from the same signal; a locked-out attempt is refused by
its backend and so also arrives here as a failure.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import User, normalize_email
from audit.services import record


@receiver(user_logged_in, dispatch_uid="audit.sign_in")
def _signed_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    record("auth.sign_in", actor=user, account=user.account_id, target=user, request=request)


@receiver(user_logged_out, dispatch_uid="audit.sign_out")
def _signed_out(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    if user is None:  # signing out without a session
        return
    record("auth.sign_out", actor=user, account=user.account_id, target=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit.sign_in_failed")
def _sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """The email tried is kept (as the target), never the password."""
    email = normalize_email(str(credentials.get("username") or credentials.get("email") or ""))
    user = User.objects.filter(email=email).first() if email else None
    record(
        "auth.sign_in_failed",
        actor=None,
        account=user.account_id if user is not None else None,
        target=user,
        target_type="accounts.user",
        target_repr=email,
        request=request,
    )
