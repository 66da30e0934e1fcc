"""The WSGI application the web server (heyloyalty/web.py) serves.

1. Django, set up once per worker process.
2. In front of it, the open pixel and tracked links, the busiest URLs, which skip the
   middleware when they can (campaigns/tracking_wsgi.py).
3. Outermost, the scheme a trusted proxy says the client used (``X-Forwarded-Proto``),
   as gunicorn did for ``FORWARDED_ALLOW_IPS`` before we served with granian.
4. Then every object made so far is moved out of the garbage collector's sight
   (``gc.freeze``): a full collection of a loaded Django process walks ~130,000 objects
   that live as long as the process, about 100 ms during which no request of that worker
   moves (docs/benchmarks.md, "Tracking").
"""

import gc
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heyloyalty.settings")
django_application = get_wsgi_application()

# Needs django.setup(), done by get_wsgi_application().
from campaigns.tracking_wsgi import WsgiApp, with_tracking  # noqa: E402

StartResponse = Callable[..., Any]


def forwarded_allow(value: str) -> frozenset[str] | None:
    """The peers whose ``X-Forwarded-Proto`` is believed; None: any peer ("*")."""
    peers = frozenset(p.strip() for p in value.split(",") if p.strip())
    return None if "*" in peers else peers


def with_forwarded_scheme(application: WsgiApp, allowed: frozenset[str] | None) -> WsgiApp:
    """``application`` seeing ``wsgi.url_scheme`` "https" where a proxy in ``allowed``
    says the client came over HTTPS (it terminates TLS; we hear plain HTTP)."""

    def forwarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        proto = environ.get("HTTP_X_FORWARDED_PROTO")
        if proto and (allowed is None or environ.get("REMOTE_ADDR") in allowed):
            environ["wsgi.url_scheme"] = "https" if proto.lower() == "https" else "http"
        return application(environ, start_response)

    return forwarded


application = with_forwarded_scheme(
    with_tracking(django_application),
    forwarded_allow(os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")),
)

gc.collect()
gc.freeze()
