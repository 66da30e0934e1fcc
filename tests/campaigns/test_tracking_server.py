"""The web server as the Procfile starts it (``python -m heyloyalty.web``, granian), on a
port of its own: it answers hits and Django's pages, logs every request in the form
bench/tracking.py counts hits from, reloads its workers on SIGHUP without refusing a
request, and stops on SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from bench.tracking import HIT_LINE
from campaigns import tracking
from campaigns.tokens import open_token
from heyloyalty.web import bind
from tests.campaigns.test_tracking import tracking_buffer

__all__ = ["tracking_buffer"]  # fixture

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class WebServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "GET", path, headers={"Host": "127.0.0.1", "User-Agent": "Mozilla/5.0 (X11)"}
            )
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds:.0f} s")


@pytest.fixture
def web(tracking_buffer: str, tmp_path: Path) -> Iterator[WebServer]:
    """One worker with two threads, on the test database, Redis and buffer key."""
    db = connection.settings_dict
    port = free_port()
    log = tmp_path / "web.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "SECRET_KEY": django_settings.SECRET_KEY,  # the tokens signed here verify there
        "REDIS_URL": django_settings.REDIS_URL,
        "TRACKING_BUFFER_KEY": tracking_buffer,
        "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@"
        f"{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "heyloyalty.web"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = WebServer(process, port, log)
    try:
        wait_until(lambda: _answers(server), "the web server answering /healthz")
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(server: WebServer) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"the web server exited:\n{server.output()}")
    try:
        return server.get("/healthz")[0] == 200
    except OSError:
        return False


def test_bind_takes_host_and_port_and_ipv6():
    assert bind("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert bind("0.0.0.0:80") == ("0.0.0.0", 80)  # noqa: S104 - parsing, not binding
    assert bind("[::]:8080") == ("::", 8080)
    assert bind(":9000") == ("127.0.0.1", 9000)


def test_the_web_server_answers_hits_and_logs_each_request(web: WebServer):
    status, headers, body = web.get(f"/o/{open_token(41)}.gif")
    assert (status, headers["content-type"], body) == (200, "image/gif", tracking.GIF)
    assert web.get(f"/o/{open_token(41)[:-1]}a.gif")[0] == 404
    assert web.get("/signin/")[0] == 200  # a page through all of Django

    assert tracking.buffer_length() == 1  # the hit answered is in the buffer
    wait_until(lambda: "/signin/" in web.output(), "the access log")
    hits = [(m.group(1), m.group(2)) for m in HIT_LINE.finditer(web.output())]
    assert hits == [("/o", "200"), ("/o", "404")]


def test_a_reload_replaces_the_workers_without_refusing_a_request(web: WebServer):
    web.process.send_signal(signal.SIGHUP)
    answers = []
    deadline = time.monotonic() + 15
    while "Stopped old worker" not in web.output() and time.monotonic() < deadline:
        answers.append(web.get("/healthz")[0])
        time.sleep(0.05)

    assert "Stopped old worker" in web.output()
    assert len(answers) > 20 and set(answers) == {200}
    assert web.get("/healthz")[0] == 200  # the new worker


def test_sigterm_stops_the_server(web: WebServer):
    web.process.send_signal(signal.SIGTERM)

    assert web.process.wait(timeout=40) == 0
    assert "Granian shutdown completed" in web.output()
