"""Two-factor sign-in with a time-based code (TOTP, RFC 6238; django-otp's TOTP device).

Required for staff (account managers and main admins), optional for customers: a customer
who turned it on is asked for the code too. The password alone never signs anyone in
who needs a code:

1. The sign-in form (dashboard or admin panel) checks the password. Instead of signing
   in, it keeps only "halfway: user N" in a fresh session (``begin``), for
   PENDING_SECONDS at most.
2. With a confirmed device, the user types the code from their app (``verify``);
   a member of staff without one adds an app first (``setup``: QR code, then a code).
3. Only then ``finish`` signs in (Django's ``login``, so the sign-in is audited as any
   other) and marks the session verified by that device.

Every wrong code is audited (``auth.two_factor_failed``: who, from where, never the
code) and throttled by the device (django-otp: after each wrong code it checks no code
for 1, 2, 4, … s, and the page says how long to wait). After MAX_TRIES codes the
halfway state is dropped: the password must be given again (and django-axes counts
wrong passwords). A lost phone: a main admin deletes the user's TOTP device in the admin
panel; at the next sign-in a member of staff adds one again.

A session signed in with the password alone (from before the user became staff or
turned this on) gets no further than the code page (accounts.middleware.
TwoFactorRequiredMiddleware); there ``resume`` makes it halfway again, for its own user.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth import BACKEND_SESSION_KEY, login
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from audit.services import record

PENDING = "two_factor_pending"
PENDING_SECONDS = 300
MAX_TRIES = 5
DEVICE_NAME = "Authenticator app"
_DEFAULT_BACKEND = "django.contrib.auth.backends.ModelBackend"


def confirmed_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def required(user: User) -> bool:
    """Staff always; a customer who turned it on."""
    return bool(user.is_staff) or confirmed_device(user) is not None


def needs_code(request: HttpRequest) -> bool:
    """Signed in, but this session has not given the code that the user needs."""
    user = request.user
    if not user.is_authenticated:
        return False
    verified = getattr(user, "is_verified", None)  # django_otp's OTPMiddleware
    if verified is not None and verified():
        return False
    return required(user)


def begin(request: HttpRequest, user: User, *, next_url: str) -> HttpResponse:
    """The password was right: remember who is halfway, sign nobody in yet."""
    request.session.cycle_key()
    _halfway(request, user, backend=getattr(user, "backend", _DEFAULT_BACKEND), next_url=next_url)
    has_device = confirmed_device(user) is not None
    return redirect("two_factor:verify" if has_device else "two_factor:setup")


def pending(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    """Who is halfway through signing in, or None (never was, expired, switched off)."""
    data = request.session.get(PENDING)
    if not data or time.time() - float(data.get("at", 0)) > PENDING_SECONDS:
        request.session.pop(PENDING, None)
        return None
    user = User.objects.filter(pk=data["user"], is_active=True).first()
    if user is None:
        request.session.pop(PENDING, None)
        return None
    return user, data


def resume(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    """A session signed in without the code it needs: halfway again, for its own user,
    back to ``?next=`` (a page of this site) once the code is right."""
    if not needs_code(request):
        return None
    user = cast(User, request.user)  # needs_code: signed in
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    backend = request.session.get(BACKEND_SESSION_KEY, _DEFAULT_BACKEND)
    return user, _halfway(request, user, backend=backend, next_url=next_url)


def _halfway(request: HttpRequest, user: User, *, backend: str, next_url: str) -> dict[str, Any]:
    """Remember in the session who is signing in, how, and where to after the code."""
    data = {"user": user.pk, "backend": backend, "next": next_url, "at": time.time(), "tries": 0}
    request.session[PENDING] = data
    return data


def count_failure(request: HttpRequest, data: dict[str, Any]) -> bool:
    """One more wrong code; True when that was the last try allowed."""
    data["tries"] = int(data.get("tries", 0)) + 1
    if data["tries"] >= MAX_TRIES:
        request.session.pop(PENDING, None)
        return True
    request.session[PENDING] = data
    return False


def finish(
    request: HttpRequest, user: User, device: TOTPDevice, data: dict[str, Any]
) -> HttpResponse:
    request.session.pop(PENDING, None)
    login(request, user, backend=data["backend"])
    otp_login(request, device)
    return redirect(data["next"])


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    wait_seconds: int = 0  # more than 0: refused unchecked, the device is throttled


def code_check(device: TOTPDevice, code: str) -> CodeCheck:
    """Is the 6-digit code right now (and not used before)? While the device is throttled
    after wrong codes, no code is checked: the answer says how long to wait."""
    allowed, info = device.verify_is_allowed()
    if not allowed:
        until = (info or {}).get("locked_until")
        wait = (until - timezone.now()).total_seconds() if until else 1
        return CodeCheck(ok=False, wait_seconds=max(1, math.ceil(wait)))
    code = "".join(code.split())
    ok = code.isdigit() and len(code) == device.digits and bool(device.verify_token(code))
    return CodeCheck(ok=ok)


def failure_record(
    request: HttpRequest, user: User, *, check: CodeCheck, step: str, tries: int | None = None
) -> None:
    """A wrong code, or one sent while the device waits: audited as a failed sign-in is
    (the user as the target, the request's IP and browser), never the code itself.
    ``tries``: the codes given in this sign-in so far (none on the settings page)."""
    extra: dict[str, Any] = {"step": step}
    if tries is not None:
        extra["tries"] = tries
    record(
        "auth.two_factor_failed",
        actor=None,
        account=user.account_id,
        target=user,
        request=request,
        reason="throttled" if check.wait_seconds else "wrong_code",
        extra=extra,
    )


def new_device(user: User) -> TOTPDevice:
    """A fresh, unconfirmed device (a new secret); earlier unconfirmed ones go."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def unconfirmed_device(user: User) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    return device or new_device(user)


def device_confirm(*, device: TOTPDevice) -> None:
    """The user typed a right code from the new device: it counts from now on; any other
    device of theirs goes (one app per person)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        device.confirmed = True


def devices_remove(*, user: User) -> int:
    """Turn two-factor sign-in off (customers only; the view checks)."""
    return int(TOTPDevice.objects.filter(user=user).delete()[0])


def secret_text(device: TOTPDevice) -> str:
    """The secret as people type it into an app: base32 in groups of four."""
    raw = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def qr_data_uri(device: TOTPDevice) -> str:
    """The otpauth:// link as a QR code, an SVG data URI (no request leaves the page)."""
    import segno

    return str(segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2))
