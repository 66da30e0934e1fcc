"""Heyloyalty's request signature as DRF authentication, throttles and permissions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.models import Account, ApiKey, ApiScope
from accounts.services import apikey_touch
from heyloyalty import keys
from heyloyalty.api.signature import SignatureError, verify
from heyloyalty.net import client_ip

log = logging.getLogger("heyloyalty.api")


@dataclass(frozen=True)
class ApiClient:
    """Who is calling: the key, and so the account every read and write is scoped to."""

    api_key: ApiKey

    @property
    def account(self) -> Account:
        return self.api_key.account

    @property
    def is_authenticated(self) -> bool:
        return True


def _failure_key(api_key: str, ip: str) -> str:
    return f"api-sigfail:{ip}:{api_key[:64]}"


class SignatureAuthentication(BaseAuthentication):
    """heyloyalty-api.md §2: Basic with the key and the HMAC of X-Request-Timestamp."""

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey]:
        meta = request.META
        authorization = meta.get("HTTP_AUTHORIZATION")
        ip = client_ip(request._request)
        presented = _presented_key(authorization)
        failures = cache.get(_failure_key(presented, ip), 0) if presented else 0
        if failures >= settings.API_SIGNATURE_FAILURE_LIMIT:
            raise exceptions.Throttled(detail="too many failed signatures")
        found: dict[str, ApiKey] = {}

        def secret_for_key(key: str) -> str | None:
            api_key = ApiKey.objects.select_related("account").filter(key=key).first()
            if api_key is None or not api_key.active:
                return None
            found["key"] = api_key
            return keys.decrypt(api_key.secret_encrypted)

        try:
            verify(
                authorization=authorization,
                timestamp=meta.get("HTTP_X_REQUEST_TIMESTAMP"),
                secret_for_key=secret_for_key,
                now=timezone.now(),
                window=timedelta(seconds=settings.API_CLOCK_WINDOW_SECONDS),
            )
        except SignatureError as error:
            log.info("API signature refused: %s (key %s, ip %s)", error.reason, presented[:8], ip)
            if presented:
                _count_failure(_failure_key(presented, ip))
            raise exceptions.AuthenticationFailed(error.reason) from None
        api_key = found["key"]
        apikey_touch(api_key=api_key)
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="Heyloyalty API"'


def _presented_key(authorization: str | None) -> str:
    from heyloyalty.api.signature import parse_basic

    try:
        return parse_basic(authorization or "")[0]
    except SignatureError:
        return ""


def _count_failure(key: str) -> None:
    window = settings.API_SIGNATURE_FAILURE_WINDOW_SECONDS
    if cache.add(key, 1, timeout=window):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)


class KeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (API_RATE, e.g. "50000/min")."""

    scope = "api_key"

    def get_rate(self) -> str:
        return str(settings.API_RATE)

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if isinstance(request.auth, ApiKey):
            return f"throttle:api:{request.auth.pk}"
        return None


class ScopePermission(BasePermission):
    """A read-only key may only read."""

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        return request.method in SAFE_METHODS or api_key.scope == ApiScope.READ_WRITE
