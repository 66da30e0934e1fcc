"""Gunicorn settings: no longer what the product runs (that is heyloyalty/web.py, granian),
kept for bench/api.py and bench/import.py, which start gunicorn with them.

Measured with bench/api.py (docs/benchmarks.md) on 2 cores: 2 workers x 4 threads serve
the signed API as fast as 3x4, 4x4, 4x2 or 2x8 (within the run-to-run spread) with the
fewest processes and database connections, so those stay the defaults. One worker per
core is the floor: each process runs Python on one core at a time.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# Threads with keep-alive connections, also when WEB_THREADS is 1 (gunicorn would then
# pick the sync worker, which closes every connection after one request).
worker_class = "gthread"
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new connections
# over them. With one shared socket, whichever worker wakes first accepts them: 32 clients
# connecting at once all landed on one worker (one core) in 3 of 6 benchmark runs,
# at half the throughput, and keep-alive kept them there.
reuse_port = True
timeout = 60
graceful_timeout = 30
accesslog = "-"
# The client IP in the access log is REMOTE_ADDR; the app decides which
# X-Forwarded-For to believe (TRUSTED_PROXIES).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
