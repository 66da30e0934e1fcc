"""A request that fails because the database or Redis is away answers 503 with the
incident banner, never a 500.

Used by OutageMiddleware (exceptions from views) and by the 500 handler (exceptions from
other middleware, such as the session or authentication middleware reaching for the
database). Neither reads the database: the page and the banner come from the status store.
"""

from __future__ import annotations

import logging

import redis
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from kombu.exceptions import OperationalError as BrokerError

from monitoring import banner

log = logging.getLogger("heyloyalty.monitoring")

OUTAGE_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BrokerError,
)
RETRY_AFTER = "30"
API_PREFIXES = ("/loyalty/", "/reseller/", "/tools/", "/api/")


def is_outage(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, OUTAGE_ERRORS):
            return True
        error = error.__cause__ or error.__context__
    return False


def response(request: HttpRequest) -> HttpResponse:
    """503: JSON for the API (in its error shape), a page with the banner otherwise."""
    if request.path.startswith(API_PREFIXES):
        answer: HttpResponse = JsonResponse(
            {"code": 503, "message": "Service Unavailable"}, status=503
        )
    else:
        html = render_to_string("monitoring/unavailable.html", {"notices": banner.current()})
        answer = HttpResponse(html, status=503)
    answer["Retry-After"] = RETRY_AFTER
    answer["Cache-Control"] = "no-store"
    return answer
