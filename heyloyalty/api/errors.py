"""Every API answer is JSON, errors included, in the shapes Heyloyalty clients check
(heyloyalty-api.md §4): 400 ``{"error": …}``, 401/403/404/405/429 ``{"code", "message"}``."""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response

from heyloyalty.api.params import ParamError
from members.services import MemberError

log = logging.getLogger("heyloyalty.api")

MESSAGES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
}


def coded(status: int) -> dict[str, Any]:
    return {"code": status, "message": MESSAGES.get(status, "Error")}


def bad_request(message: str, field: str | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return Response(body, status=400)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ParamError | MemberError):
        return bad_request(exc.message, exc.field)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return Response(coded(404), status=404)
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        return Response(coded(401), status=401, headers={"WWW-Authenticate": 'Basic realm="api"'})
    if isinstance(exc, exceptions.Throttled):
        wait = getattr(exc, "wait", None)
        headers = {"Retry-After": str(int(wait))} if wait else {}
        return Response(coded(429), status=429, headers=headers)
    if isinstance(exc, exceptions.ValidationError | exceptions.ParseError):
        return bad_request(str(exc.detail))
    if isinstance(exc, exceptions.APIException):
        return Response(coded(exc.status_code), status=exc.status_code)
    return None  # a real bug: Django's 500 handler, logged


@csrf_exempt  # a POST to an unknown API path is a JSON 404 too, not the CSRF page
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown paths under the API prefixes answer JSON, never HTML or a redirect."""
    return JsonResponse(coded(404), status=404)


API_PREFIXES = ("/loyalty/", "/reseller/", "/tools/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under the API prefixes (also for paths no pattern can match, such as
    one with a newline in it), the dashboard's page elsewhere."""
    if request.path.startswith(API_PREFIXES):
        return JsonResponse(coded(404), status=404)
    return defaults.page_not_found(request, exception)
