"""The open pixel (/o/<token>.gif) and the click redirect (/c/<token>).

A token that does not verify (forged, truncated, changed, another installation's) gets a
plain 404 and nothing is recorded; the pixel too, rather than a GIF: only a forger asks
for it. A click whose campaign has no link at that position is the same 404: a click
only ever leads to a URL the campaign contained, taken from its Link row.

Only GET records a hit; HEAD gets the same answer without one (a person's mail client
does not ask for headers only). The same answers are given by campaigns.tracking_wsgi
before Django when no query is needed; these views answer the rest.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from campaigns import tracking
from heyloyalty.net import client_ip

RECORDED = ("GET",)
ANSWERED = ("GET", "HEAD")
# Set by campaigns.tracking_wsgi when it tried first: the same hit keeps its id.
PRE_MADE = "heyloyalty.tracking_hit"


def _headers(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = tracking.NO_CACHE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def not_found() -> HttpResponse:
    return _headers(HttpResponse(b"Not found\n", status=404, content_type="text/plain"))


def pixel() -> HttpResponse:
    return _headers(HttpResponse(tracking.GIF, content_type="image/gif"))


def redirect(url: str) -> HttpResponse:
    response = HttpResponse(status=302)
    response["Location"] = url
    return _headers(response)


def _record(request: HttpRequest, kind: str, delivery_id: int, position: int | None) -> None:
    if request.method not in RECORDED:
        return
    event: dict[str, Any] | None = request.META.get(PRE_MADE)
    if event is None:
        agent = str(request.META.get("HTTP_USER_AGENT", ""))
        event = tracking.hit(kind, delivery_id, position, client_ip(request), agent)
    tracking.record(event)


def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    if request.method not in ANSWERED:
        return HttpResponseNotAllowed(ANSWERED)
    delivery_id = tracking.open_delivery(token)
    if delivery_id is None:
        return not_found()
    _record(request, tracking.OPEN, delivery_id, None)
    return pixel()


def click(request: HttpRequest, token: str) -> HttpResponse:
    if request.method not in ANSWERED:
        return HttpResponseNotAllowed(ANSWERED)
    found = tracking.click_target(token)
    if found is None:
        return not_found()
    delivery_id, position = found
    url = tracking.click_url(delivery_id, position)
    if url is None:
        return not_found()
    _record(request, tracking.CLICK, delivery_id, position)
    return redirect(url)
