"""Gunicorn settings, shared by `make run` and docker-compose (BIND differs)."""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 60
graceful_timeout = 30
accesslog = "-"
# The client IP in the access log is REMOTE_ADDR; the app decides which
# X-Forwarded-For to believe (TRUSTED_PROXIES).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
