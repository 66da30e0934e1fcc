"""Heyloyalty's request signature as DRF authentication, throttles and permissions."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from accounts.models import Account, ApiKey, ApiScope
from accounts.services import apikey_touch
from heyloyalty import keys
from heyloyalty.api.signature import SignatureError, verify
from heyloyalty.net import client_ip
from heyloyalty.redis_client import redis_client

log = logging.getLogger("heyloyalty.api")

# A key found in the database is kept in process memory, with its decrypted secret, for this
# many seconds: the API's hot path then costs no query and no decryption per request. So a
# key revoked in the dashboard stops working in every process within KEY_CACHE_SECONDS.
# Unknown and revoked keys are never kept, so a new key works at once.
KEY_CACHE_SECONDS = 5.0
KEY_CACHE_SIZE = 1000

# Last use is written at most once a minute (apikey_touch); between writes not even the
# conditional UPDATE is sent.
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class _KnownKey:
    api_key: ApiKey
    secret: str
    expires: float  # time.monotonic()


_known_keys: dict[str, _KnownKey] = {}
_clock = time.monotonic  # replaced by tests


def _active_key(key: str) -> _KnownKey | None:
    """The active key with this name and its secret, from memory when looked up recently."""
    now = _clock()
    known = _known_keys.get(key)
    if known is not None and known.expires > now:
        return known
    api_key = ApiKey.objects.select_related("account").filter(key=key).first()
    if api_key is None or not api_key.active:
        _known_keys.pop(key, None)
        return None
    if len(_known_keys) >= KEY_CACHE_SIZE:
        _known_keys.clear()  # a bound, never reached by a real deployment's number of keys
    known = _KnownKey(api_key, keys.decrypt(api_key.secret_encrypted), now + KEY_CACHE_SECONDS)
    _known_keys[key] = known
    return known


def _record_use(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < TOUCH_INTERVAL:
        return
    apikey_touch(api_key=api_key)
    api_key.last_used_at = now  # recorded by us or, within the minute, by another process


def _redis() -> redis.Redis:
    return redis_client()


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
    return f"hl:api-sigfail:{ip}:{api_key[:64]}"


class SignatureAuthentication(BaseAuthentication):
    """heyloyalty-api.md §2: Basic with the key and the HMAC of X-Request-Timestamp."""

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey]:
        meta = request.META
        authorization = meta.get("HTTP_AUTHORIZATION")
        ip = client_ip(request._request)
        presented = _presented_key(authorization)
        failures = _failures(_failure_key(presented, ip)) if presented else 0
        if failures >= settings.API_SIGNATURE_FAILURE_LIMIT:
            raise exceptions.Throttled(detail="too many failed signatures")
        found: dict[str, ApiKey] = {}

        def secret_for_key(key: str) -> str | None:
            known = _active_key(key)
            if known is None:
                return None
            found["key"] = known.api_key
            return known.secret

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
        _record_use(api_key)
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="Heyloyalty API"'


def _presented_key(authorization: str | None) -> str:
    from heyloyalty.api.signature import parse_basic

    try:
        return parse_basic(authorization or "")[0]
    except SignatureError:
        return ""


# While Redis is away the API still serves (issue 8): the failure count and the rate limit
# are not kept meanwhile, and a wrong signature is still refused.
REDIS_AWAY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _failures(key: str) -> int:
    try:
        return int(_redis().get(key) or 0)
    except REDIS_AWAY:
        return 0


def _count_failure(key: str) -> None:
    """One more failure; the count expires a window after the first one."""
    pipe = _redis().pipeline(transaction=False)
    pipe.set(key, 0, ex=settings.API_SIGNATURE_FAILURE_WINDOW_SECONDS, nx=True)
    pipe.incr(key)
    try:
        pipe.execute()
    except REDIS_AWAY:
        log.warning("Redis is away: a failed API signature was not counted")


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_rate(rate: str) -> tuple[int, int]:
    """``"60000/min"`` -> (60000, 60), as DRF reads rates."""
    number, _, period = rate.partition("/")
    return int(number), _PERIODS[period.strip()[0]]


class KeyRateThrottle(BaseThrottle):
    """Requests per API key (API_RATE, e.g. "50000/min"), over a sliding window.

    The window is estimated from two fixed-window counters in Redis: this window's count plus
    the previous window's, weighted by how much of it still overlaps the sliding window. That
    is one round trip and a few bytes per request whatever the rate, where DRF's own throttle
    reads and writes a list of every request's time (tens of thousands at API rates).
    """

    timer = staticmethod(time.time)

    def __init__(self) -> None:
        self.limit, self.duration = _parse_rate(str(settings.API_RATE))
        self.retry_after = 0.0

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        key = f"hl:throttle:api:{request.auth.pk}"
        now = self.timer()
        window = int(now // self.duration)
        current = f"{key}:{window}"
        pipe = _redis().pipeline(transaction=False)
        pipe.incr(current)
        pipe.expire(current, 2 * self.duration)
        pipe.get(f"{key}:{window - 1}")
        try:
            count, _, previous = pipe.execute()
        except REDIS_AWAY:
            return True
        previous = int(previous or 0)
        elapsed = now - window * self.duration
        if previous * (1 - elapsed / self.duration) + count <= self.limit:
            return True
        _redis().decr(current)  # a refused request does not count against the key
        self.retry_after = self._retry_after(elapsed, count - 1, previous)
        return False

    def _retry_after(self, elapsed: float, count: int, previous: int) -> float:
        """Seconds until one more request fits, if none is sent meanwhile."""
        limit, duration = self.limit, self.duration
        if count < limit and previous:
            # Later in this window, once enough of the previous one has slid out.
            return duration * (1 - (limit - count - 1) / previous) - elapsed
        # In the next window, where this window's count is the part sliding out.
        return duration - elapsed + duration * max(0.0, 1 - (limit - 1) / max(count, 1))

    def wait(self) -> float:
        return float(max(1, math.ceil(self.retry_after)))


class ScopePermission(BasePermission):
    """A read-only key may only read."""

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        return request.method in SAFE_METHODS or api_key.scope == ApiScope.READ_WRITE
