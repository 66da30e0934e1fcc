"""/readyz, the status page, and the 500 handler that turns an outage into a 503."""

from __future__ import annotations

import sys

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from monitoring import banner, checks, outage, selectors

HISTORY_PAGE_SIZE = 25


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Each dependency's state; 503 while a critical one fails (monitoring/checks.py)."""
    results = checks.run()
    ready = not any(c.failing and c.critical for c in results)
    body = {
        "status": "ok" if ready else "fail",
        "checks": {
            c.name: {"status": c.status, "detail": c.detail, "critical": c.critical, "ms": c.ms}
            for c in results
        },
    }
    return JsonResponse(body, status=200 if ready else 503)


@login_required
@require_safe
def status_page(request: HttpRequest) -> HttpResponse:
    """Open incidents, availability per month, and the incident history."""
    page = Paginator(selectors.incidents_history(), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "monitoring/status.html",
        {
            "notices": banner.current(),
            "months": selectors.monthly_availability(),
            "page": page,
        },
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: 503 with the banner when the database or Redis is away, else the
    plain 500 page (which reads nothing that could be down)."""
    if outage.is_outage(sys.exc_info()[1]):
        return outage.response(request)
    return HttpResponse(render_to_string("500.html"), status=500)
