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

What is done per hit here is kept small: the token is decoded once (its canonical form
is checked on its last letter rather than by encoding it again), the headers of each
kind of answer are made once, and the client's address is taken as it is when no proxy
is trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest

from campaigns import tokens, tracking
from campaigns.tracking_views import PRE_MADE
from heyloyalty.net import _is_trusted, client_ip

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Answer = tuple[str, list[tuple[str, str]], bytes]

_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_LETTER = {c: i for i, c in enumerate(_BASE32)} | {c.upper(): i for i, c in enumerate(_BASE32)}


def _canonical(token: str) -> bool:
    """What campaigns.tracking._canonical answers for a token that decodes, without
    encoding it again: base32 puts the bits left over past the last byte into the last
    letter, and the one encoding of those bytes has them all zero."""
    if not token or token[-1] not in _LETTER:
        return False  # also "=": padding is never part of a token as mailed
    spare = 5 * len(token) % 8
    return not _LETTER[token[-1]] & ((1 << spare) - 1)


def open_delivery(token: str) -> int | None:
    """campaigns.tracking.open_delivery, with the token decoded once."""
    return tokens.open_read(token) if _canonical(token) else None


def click_target(token: str) -> tuple[int, int] | None:
    """campaigns.tracking.click_target, with the token decoded once."""
    return tokens.click_read(token) if _canonical(token) else None


class _Meta:
    """Enough of a request for heyloyalty.net.client_ip: its META is the environ."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ


def _client_ip(environ: dict[str, Any]) -> str:
    if not settings.TRUSTED_PROXIES:  # no X-Forwarded-For is believed: the peer is the client
        return str(environ.get("REMOTE_ADDR", ""))
    return client_ip(cast(HttpRequest, _Meta(environ)))


def _secure(environ: dict[str, Any]) -> bool:
    """Django's ``request.is_secure()`` behind heyloyalty.proxy (the proxy's header only
    from a trusted proxy), so HSTS goes out where Django would send it."""
    if settings.SECURE_PROXY_SSL_HEADER and _is_trusted(str(environ.get("REMOTE_ADDR", ""))):
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return bool(value.split(",", 1)[0].strip() == secure_value)
    return bool(environ.get("wsgi.url_scheme") == "https")


_made: dict[tuple[Any, ...], list[tuple[str, str]]] = {}


def _headers(content_type: str, length: int, environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The headers Django's tracking views and security middleware would send, made once
    for each kind of answer and set of settings."""
    policy, hsts = settings.SECURE_REFERRER_POLICY, settings.SECURE_HSTS_SECONDS
    if hsts and _secure(environ):
        hsts_value = f"max-age={hsts}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts_value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts_value += "; preload"
    else:
        hsts_value = ""
    key = (content_type, length, policy, hsts_value)
    headers = _made.get(key)
    if headers is None:
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(length)),
            ("Cache-Control", tracking.NO_CACHE),
            ("Pragma", "no-cache"),
            ("Expires", "0"),
            ("X-Robots-Tag", "noindex, nofollow"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if policy:
            headers.append(("Referrer-Policy", str(policy)))
        if hsts_value:
            headers.append(("Strict-Transport-Security", hsts_value))
        _made[key] = headers
    return list(headers)  # the server may add to it


def _not_found(environ: dict[str, Any]) -> Answer:
    body = b"Not found\n"
    return "404 Not Found", _headers("text/plain", len(body), environ), body


def _pushed(environ: dict[str, Any], kind: str, delivery_id: int, position: int | None) -> bool:
    agent = str(environ.get("HTTP_USER_AGENT", ""))
    event = tracking.hit(kind, delivery_id, position, _client_ip(environ), agent)
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
        delivery_id = open_delivery(token[:-4])
        if delivery_id is None:
            return _not_found(environ)
        if not _pushed(environ, tracking.OPEN, delivery_id, None):
            return None
        return "200 OK", _headers("image/gif", len(tracking.GIF), environ), tracking.GIF
    if path.startswith("/c/"):
        found = click_target(token)
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
