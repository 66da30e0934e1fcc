"""Who is on the other end of a request."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _trusted(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_trusted(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in _trusted(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest) -> str:
    """The client's address.

    ``X-Forwarded-For`` is believed only when the connection comes from a proxy
    listed in TRUSTED_PROXIES; then the right-most address that is not one of our
    proxies is the client (entries further left are whatever the client claimed).
    """
    remote = str(request.META.get("REMOTE_ADDR", ""))
    if not _is_trusted(remote):
        return remote
    forwarded = [p.strip() for p in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    for hop in reversed([p for p in forwarded if p]):
        if not _is_trusted(hop):
            return hop
    return remote
