"""The web server: ``python -m heyloyalty.web`` (Procfile, so `make run`; docker-compose).

Granian, an HTTP server written in Rust with a WSGI interface, serves heyloyalty.wsgi. It
replaced gunicorn's threaded worker because that spends more CPU per request in Python
(parsing HTTP, handing each request from the polling thread to a worker thread) than our
busiest requests cost in the application. Side by side on 2 cores, the same code: an open
or click cost 0.274 ms of server CPU under gunicorn and 0.115 ms under granian, the
no-op view 0.518 and 0.245 ms, a 404 answered from the token alone 0.226 and 0.046 ms
(docs/benchmarks.md, "Tracking", where every run is).

From the environment:

- ``BIND`` (``127.0.0.1:8000``; ``[::]:8000`` for IPv6): where to listen.
- ``WEB_CONCURRENCY`` (2): worker processes, one per core. On Linux each listens on its
  own SO_REUSEPORT socket and the kernel spreads new connections over them.
- ``WEB_THREADS`` (4): Python threads per worker, at most as many requests in the
  application at once per worker, and as many database connections.
- ``WEB_BACKPRESSURE``: connections a worker takes in before it leaves new ones in the
  listen queue (granian's default: 1024 / workers). Keep it above the keep-alive
  connections a proxy in front holds open.
- ``FORWARDED_ALLOW_IPS`` (``127.0.0.1``; ``*`` for any): the proxies whose
  ``X-Forwarded-Proto`` sets the request's scheme; read by heyloyalty/wsgi.py. Which
  ``X-Forwarded-For`` to believe is the app's decision (``TRUSTED_PROXIES``).

Operations: every request is logged on stdout (peer address, time, request line, status,
milliseconds; the peer is the proxy when there is one). ``SIGHUP`` replaces the workers
one by one with fresh ones that load the code anew (a graceful reload; on Linux, set the
sysctl ``net.ipv4.tcp_migrate_req=1`` so that connections still in an old worker's listen
queue move to a new one); ``SIGTERM`` or ``SIGINT`` stops: workers finish the requests
they hold, for at most ``WORKER_KILL_SECONDS``. A worker that dies is started again. There
is no per-request time limit: a slow request holds one thread of its worker, and the
proxy in front (Caddy, deploy/Caddyfile) decides how long a client waits.

Granian copies the server process's environment into each request's WSGI environ (as
CGI does), so ``request.META`` holds it; nothing of ours shows META to anyone (DEBUG is
off in production and no error report carries it).
"""

from __future__ import annotations

import os

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server import MPServer

TARGET = "heyloyalty.wsgi:application"
# Like gunicorn's: what bench/tracking.py counts the answered hits from.
ACCESS_LOG = '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f'
WORKER_KILL_SECONDS = 30


def bind(value: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6 address]:port``) as granian takes it."""
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def server(environ: dict[str, str]) -> MPServer:
    address, port = bind(environ.get("BIND", "127.0.0.1:8000"))
    backpressure = environ.get("WEB_BACKPRESSURE")
    # granian.server.Server is MPServer on a CPython with the GIL, ours: worker processes.
    return MPServer(
        TARGET,
        address=address,
        port=port,
        interface=Interfaces.WSGI,
        websockets=False,  # not in WSGI
        workers=int(environ.get("WEB_CONCURRENCY", "2")),
        blocking_threads=int(environ.get("WEB_THREADS", "4")),
        backpressure=int(backpressure) if backpressure else None,
        log_level=LogLevels.info,
        log_access=True,
        log_access_format=ACCESS_LOG,
        respawn_failed_workers=True,
        workers_kill_timeout=WORKER_KILL_SECONDS,
    )


def main() -> None:
    server(dict(os.environ)).serve()


if __name__ == "__main__":
    main()
