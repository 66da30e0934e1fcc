"""Who may open a dashboard page. One decorator, used by every customer page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import redirect

from accounts.models import Account, Role, User

View = Callable[..., HttpResponseBase]


def customer_view(*, owner_only: bool = False) -> Callable[[View], View]:
    """A page of the customer dashboard: the view gets ``account`` (the signed-in user's),
    and ``owner_only`` pages refuse plain users.

    Staff are sent to the admin panel, unless they work in the dashboard on the
    customer's behalf (``request.acting_account``, set by ActingAsMiddleware with the
    customer's consent): then the view gets that account, with a plain user's rights, so
    the owner's pages (API keys, the consent setting and the access log) stay the owner's.
    """

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = cast(User, request.user)
            if user.is_staff:
                acting: Account | None = getattr(request, "acting_account", None)
                if acting is None:
                    return redirect("admin:index")
                if owner_only:
                    raise PermissionDenied
                return view(request, *args, account=acting, **kwargs)
            account: Account | None = user.account
            if account is None:  # a database constraint gives every customer an account
                raise Http404
            if owner_only and user.role != Role.OWNER:
                raise PermissionDenied
            return view(request, *args, account=account, **kwargs)

        return wrapper

    return decorate
