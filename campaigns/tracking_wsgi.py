"""The open pixel and the click redirect, answered before Django when they can be.

A tracking hit needs none of what Django's middleware does per request (session, locale,
CSRF, authentication, messages, the lockout check): in front of the Django application,
this answers a GET of /o/<token>.gif or /c/<token> straight away when nothing else is
needed: the token verifies (or does not: 404), the hit went into the Redis buffer, and
for a click the URL is known in process memory. Anything else (a link not looked up yet,
Redis down, HEAD, a malformed path) goes on to Django's views (campaigns.tracking_views),
which give the same answers, with the hit this layer made (the same event id) when it
got that far. In process, a hit answered here costs about a fifth of the CPU it costs
through the middleware (docs/benchmarks.md, "Tracking").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest

from campaigns import tracking
from campaigns.tracking_views import PRE_MADE
from heyloyalty.net import client_ip

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Answer = tuple[str, list[tuple[str, str]], bytes]


class _Meta:
    """Enough of a request for heyloyalty.net.client_ip: its META is the environ."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ


def _headers(content_type: str, length: int, environ: dict[str, Any]) -> list[tuple[str, str]]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(length)),
        ("Cache-Control", tracking.NO_CACHE),
        ("Pragma", "no-cache"),
        ("Expires", "0"),
        ("X-Robots-Tag", "noindex, nofollow"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if settings.SECURE_REFERRER_POLICY:
        headers.append(("Referrer-Policy", str(settings.SECURE_REFERRER_POLICY)))
    if settings.SECURE_HSTS_SECONDS and environ.get("wsgi.url_scheme") == "https":
        headers.append(("Strict-Transport-Security", f"max-age={settings.SECURE_HSTS_SECONDS}"))
    return headers


def _not_found(environ: dict[str, Any]) -> Answer:
    body = b"Not found\n"
    return "404 Not Found", _headers("text/plain", len(body), environ), body


def _pushed(environ: dict[str, Any], kind: str, delivery_id: int, position: int | None) -> bool:
    ip = client_ip(cast(HttpRequest, _Meta(environ)))
    event = tracking.hit(kind, delivery_id, position, ip, str(environ.get("HTTP_USER_AGENT", "")))
    if tracking.buffer_push(event):
        return True
    environ[PRE_MADE] = event  # Django's view writes it directly, with the same id
    return False


def answer(environ: dict[str, Any]) -> Answer | None:
    """The answer to a tracking GET, or None to leave the request to Django."""
    path = str(environ.get("PATH_INFO", ""))
    token = path[3:]
    if "/" in token or environ.get("REQUEST_METHOD") != "GET":
        return None
    if path.startswith("/o/") and token.endswith(".gif"):
        delivery_id = tracking.open_delivery(token[:-4])
        if delivery_id is None:
            return _not_found(environ)
        if not _pushed(environ, tracking.OPEN, delivery_id, None):
            return None
        return "200 OK", _headers("image/gif", len(tracking.GIF), environ), tracking.GIF
    if path.startswith("/c/"):
        found = tracking.click_target(token)
        if found is None:
            return _not_found(environ)
        url = tracking.click_url_cached(*found)
        if url is None or not _pushed(environ, tracking.CLICK, *found):
            return None
        headers = _headers("text/html; charset=utf-8", 0, environ)
        return "302 Found", [*headers, ("Location", url)], b""
    return None


def with_tracking(application: WsgiApp) -> WsgiApp:
    """``application`` with tracking hits answered in front of it."""

    def tracked(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "")[:3] in ("/o/", "/c/"):
            found = answer(environ)
            if found is not None:
                status, headers, body = found
                start_response(status, headers)
                return [body]
        return application(environ, start_response)

    return tracked
