"""What the monitoring tests share: a status store of the test's own (file and Redis key
prefix), alerts to ALERTS and the Technicians group, a webhook receiver, and heartbeats
written the way the worker and beat processes write them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group

from monitoring import heartbeats

ALERTS = "oncall@ops.example"


@pytest.fixture(autouse=True)
def monitor_settings(settings, tmp_path: Path) -> Iterator[str]:
    """The test's own status file and Redis keys; quick thresholds; alerts to ALERTS."""
    prefix = f"hl:monitor-test:{uuid.uuid4().hex[:10]}"
    client = heartbeats.monitor_redis()  # before a test points REDIS_URL elsewhere
    settings.MONITOR_STATUS_FILE = tmp_path / "monitor" / "status.json"
    settings.MONITOR_KEY_PREFIX = prefix
    settings.MONITOR_RECOVERY_SECONDS = 0
    settings.MONITOR_WEBHOOK_URL = ""
    settings.MONITOR_WEBHOOK_SECRET = ""
    settings.MONITOR_WEB_URL = ""
    settings.ALERT_SMTP_URL = ""
    settings.ALERT_EMAILS = [ALERTS]
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def processes_alive() -> None:
    """A worker and beat that have just written their heartbeats."""
    heartbeats.beat_worker("worker@test")
    heartbeats.beat_beat()


@pytest.fixture
def technician(personas):
    """Root is a technician: alerts go to ALERTS and root@heyloyalty.test."""
    Group.objects.get(name="Technicians").user_set.add(personas.root)
    return personas.root


@dataclass
class WebhookReceiver:
    url: str
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answer: int = 200

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.posts) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.posts)} webhook posts, not {count}")
            time.sleep(0.05)


@contextlib.contextmanager
def webhook_server() -> Iterator[WebhookReceiver]:
    """A real HTTP server on a free port that keeps every POST."""
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(receiver.answer)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with webhook_server() as receiver:
        yield receiver
