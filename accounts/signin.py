"""Sign-in policy glue for django-axes."""

from typing import Any

from django.http import HttpRequest

from accounts.models import normalize_email


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """Lock on the email as we store it, so ``Alice@X`` and ``alice@x `` are one user."""
    raw = (credentials or {}).get("username") or request.POST.get("username", "")
    return normalize_email(str(raw))
