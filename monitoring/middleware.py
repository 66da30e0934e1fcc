from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from monitoring import outage


class OutageMiddleware:
    """A view that fails because the database or Redis is away answers 503, not 500
    (monitoring/outage.py). Early in MIDDLEWARE, so its process_exception runs last."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not outage.is_outage(exception):
            return None
        outage.log.error("503 for %s: %s", request.path, exception)
        return outage.response(request)
