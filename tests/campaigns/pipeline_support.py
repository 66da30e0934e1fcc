"""What the pipeline tests share: a counting SMTP server and real Celery workers that can
be killed with SIGKILL and started again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.db import connection

BASE = Path(__file__).resolve().parent.parent.parent


class CountingSink:
    """A real SMTP server (aiosmtpd) that keeps, per recipient, how many messages came
    and the last message's bytes; a recipient in `refuse` gets the given answer at RCPT
    (the next `refuse_times[address]` times when that is set, else always). It offers
    PIPELINING (RFC 2920) as Postfix does, unless `pipelining` is False."""

    def __init__(self, *, pipelining: bool = True) -> None:
        self.pipelining = pipelining
        self.received: Counter[str] = Counter()
        self.last: dict[str, bytes] = {}
        self.refuse: dict[str, str] = {}
        self.refuse_times: dict[str, int] = {}
        self.refused: Counter[str] = Counter()
        self.lock = threading.Lock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands in order, so it can say so
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        key = address.lower()
        answer = self.refuse.get(key)
        if answer and (key not in self.refuse_times or self.refused[key] < self.refuse_times[key]):
            self.refused[key] += 1
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received[rcpt.lower()] += 1
                self.last[rcpt.lower()] = envelope.original_content or envelope.content
        return "250 OK"

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.received.values())

    def __enter__(self) -> CountingSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def send_queue() -> Iterator[str]:
    """This run's own Celery queue, for the tasks this process queues and the workers'
    (their CELERY_QUEUE); emptied at the end."""
    from heyloyalty.celery import app
    from heyloyalty.redis_client import redis_client

    name, before = f"test-send-{os.getpid()}", app.conf.task_default_queue
    app.conf.task_default_queue = name
    yield name
    app.conf.task_default_queue = before
    redis_client().delete(name)


def database_url() -> str:
    db = connection.settings_dict
    password = db.get("PASSWORD") or ""
    return f"postgres://{db['USER']}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Workers:
    """`celery worker` with its beat, in a process group of its own, so that every
    process of it can be killed at once."""

    def __init__(self, *, queue: str, smtp_port: int, concurrency: int = 2, **env: str) -> None:
        self.queue = queue
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "CELERY_QUEUE": queue,
            "SEND_CLAIM_LEASE_SECONDS": "3",
            "SEND_STALL_SECONDS": "3",
            "SEND_REAPER_SECONDS": "1",
            "SEND_RETRY_DELAYS": "1,1,1",
            **env,
        }
        self.concurrency = concurrency
        self.process: subprocess.Popen[str] | None = None
        self.logs: list[str] = []
        self.schedule = Path(tempfile.gettempdir()) / f"celerybeat-{queue}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "heyloyalty",
                "worker",
                "--beat",
                "--schedule",
                str(self.schedule),
                "--pool",
                "prefork",
                "--concurrency",
                str(self.concurrency),
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "WARNING",
                "--queues",
                self.queue,
            ],
            cwd=BASE,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL to every process of the worker: no goodbye, no cleanup."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        output, _ = self.process.communicate(timeout=30)
        self.logs.append(output)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()  # the main process: a warm shutdown of its pool
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            output, _ = self.process.communicate(timeout=30)
        self.logs.append(output)
        self.process = None
        self.schedule.unlink(missing_ok=True)

    @property
    def output(self) -> str:
        return "\n".join(self.logs)


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
