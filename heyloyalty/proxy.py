"""Only our own proxy may say the client came over HTTPS.

Django believes SECURE_PROXY_SSL_HEADER from whoever sends it. Behind a proxy that
terminates TLS (Caddy), a client that reaches the web process some other way could send
``X-Forwarded-Proto: https`` and be taken for a secure request. So the header is dropped
unless the connection comes from one of TRUSTED_PROXIES (settings.py sets
SECURE_PROXY_SSL_HEADER only when there are any).
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from heyloyalty.net import _is_trusted

PROXY_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_SSL")


class UntrustedProxyHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_trusted(str(request.META.get("REMOTE_ADDR", ""))):
            for header in PROXY_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)
