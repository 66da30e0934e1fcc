"""A whole Heyloyalty of its own for the fault tests, whose parts can be stopped and started
for real: PostgreSQL (the embedded server of `make run`, heyloyalty/dev/embedded.py) and
redis-server on free ports in a temporary directory, an SMTP relay (aiosmtpd), and the
web, worker, beat and watchdog processes as production runs them.

Nothing here touches the machine's shared PostgreSQL or Redis. The technicians' mailbox
(the alert relay, ALERT_SMTP_URL) and the alert webhook stay up throughout: they are how
the test sees what the technicians are told.
"""

from __future__ import annotations

import contextlib
import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import redis
import requests
from aiosmtpd.controller import Controller

from heyloyalty.api.signature import sign
from heyloyalty.dev.embedded import EmbeddedPostgres

BASE = Path(__file__).resolve().parent.parent.parent
PY = sys.executable
PASSWORD = "tr0ub4dor-and-3-horses"
ALERTS = "oncall@ops.example"
TECHNICIAN = "tech@ops.example"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # not yet; try again until the deadline
            last = error
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


class Mailbox:
    """A real SMTP server (aiosmtpd) that keeps every message; stop() and start() close
    and reopen the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[tuple[list[str], email.message.Message]] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def subjects(self, prefix: str = "") -> list[str]:
        with self.lock:
            return [
                str(m["Subject"]) for _, m in self.messages if str(m["Subject"]).startswith(prefix)
            ]

    def recipients_of(self, subject: str) -> list[str]:
        with self.lock:
            return sorted(r for rcpt, m in self.messages if m["Subject"] == subject for r in rcpt)


class RedisServer:
    """redis-server on a free port, keeping nothing on disk: a restart starts empty."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.work = work
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.work / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.work)],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: redis.Redis.from_url(self.url, socket_timeout=1).ping(), "redis")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=BASE, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        """SIGKILL to the whole process group: it dies as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Stack:
    work: Path
    postgres: EmbeddedPostgres = field(init=False)
    redis: RedisServer = field(init=False)
    relay: Mailbox = field(default_factory=Mailbox)  # campaigns and the app's mail
    alerts: Mailbox = field(default_factory=Mailbox)  # the technicians' mailbox
    web_port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)
    seed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.postgres = EmbeddedPostgres(self.work / "pg", free_port())
        self.redis = RedisServer(self.work)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self, webhook_url: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "CELERY_"))}
        return {
            **keep,
            "PYTHONUNBUFFERED": "1",
            "ENV_FILE": "/dev/null",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "PUBLIC_URL": self.url,
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "STATIC_MANIFEST": "0",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.postgres.port}/heyloyalty",
            "REDIS_URL": self.redis.url,
            "SMTP_URL": f"smtp://127.0.0.1:{self.relay.port}",
            "ALERT_SMTP_URL": f"smtp://127.0.0.1:{self.alerts.port}",
            "ALERT_EMAILS": ALERTS,
            "MONITOR_WEBHOOK_URL": webhook_url,
            "MONITOR_STATUS_FILE": str(self.work / "status.json"),
            "MONITOR_HEARTBEAT_SECONDS": "1",
            "MONITOR_STALE_SECONDS": "3",
            "MONITOR_WATCHDOG_SECONDS": "1",
            "MONITOR_CHECK_TIMEOUT_SECONDS": "2",
            "MONITOR_RECOVERY_SECONDS": "0",
            "MONITOR_JOB_GRACE_SECONDS": "3600",
            "CELERY_QUEUE": f"faults-{os.getpid()}",
            "SEND_REAPER_SECONDS": "1",
            "SEND_CLAIM_LEASE_SECONDS": "3",
            "SEND_STALL_SECONDS": "3",
            "SEND_RETRY_DELAYS": ",".join(["2"] * 30),
            "BACKUP_DIR": str(self.work / "backups"),
            "WEB_CONCURRENCY": "1",
            "BIND": f"127.0.0.1:{self.web_port}",
            "TEST_DATABASE_NAME": "",
        }

    def start(self, webhook_url: str) -> None:
        self.postgres.start()
        self.postgres.ensure_database("heyloyalty")
        self.redis.start()
        self.relay.start()
        self.alerts.start()
        env = self.env(webhook_url)
        subprocess.run(
            [PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE, env=env, check=True
        )
        self.seed = json.loads(
            subprocess.run(
                [PY, "manage.py", "shell", "-c", SEED], cwd=BASE, env=env, check=True,
                capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
        )  # fmt: skip
        celery = [PY, "-m", "celery", "--app", "heyloyalty"]
        commands = {
            "web": [PY, "-m", "heyloyalty.web"],
            "worker": [*celery, "worker", "--pool", "prefork", "--concurrency", "1",
                       "--without-mingle", "--without-gossip", "--loglevel", "WARNING",
                       "--queues", env["CELERY_QUEUE"], "--hostname", "faults@%h"],
            "beat": [*celery, "beat", "--loglevel", "WARNING",
                     "--schedule", str(self.work / "celerybeat-schedule")],
            "watchdog": [PY, "manage.py", "watchdog"],
        }  # fmt: skip
        for name, command in commands.items():
            self.processes[name] = Process(name, command, env, self.work / f"{name}.log")
            self.processes[name].start()
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=2).ok, "the web server", 60)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.relay.stop()
        self.alerts.stop()
        self.redis.stop()
        self.postgres.stop()

    # -- Looking at it as a person and a client would -----------------------------------

    def quiet(self) -> bool:
        """The watchdog's last pass, a moment ago, found nothing wrong and nothing open."""
        try:
            doc = json.loads((self.work / "status.json").read_text())
        except (OSError, ValueError):
            return False
        watchdog = doc.get("watchdog") or {}
        at = watchdog.get("at")
        fresh = at and time.time() - datetime.fromisoformat(at).timestamp() < 3
        state = watchdog.get("state") or {}
        failing = [c for c in watchdog.get("checks", []) if c["status"] == "fail"]
        return bool(fresh) and state.get("incident") is None and not failing

    def readyz(self) -> tuple[int, dict[str, Any]]:
        answer = requests.get(f"{self.url}/readyz", timeout=10)
        return answer.status_code, answer.json()

    def signed_in(self) -> requests.Session:
        session = requests.Session()
        page = session.get(f"{self.url}/signin/", timeout=10)
        token = page.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        answer = session.post(
            f"{self.url}/signin/",
            data={"csrfmiddlewaretoken": token, "username": self.seed["email"],
                  "password": PASSWORD},
            headers={"Referer": f"{self.url}/signin/"}, allow_redirects=False, timeout=10,
        )  # fmt: skip
        assert answer.status_code == 302, answer.text
        return session

    def api(self, method: str, path: str, data: dict[str, str] | None = None) -> requests.Response:
        signed = sign(self.seed["key"], self.seed["secret"], formatdate(usegmt=True))
        return requests.request(
            method, f"{self.url}/loyalty/v1/{path}", data=data, timeout=30,
            headers={"Authorization": signed["Authorization"],
                     "X-Request-Timestamp": signed["X-Request-Timestamp"]},
        )  # fmt: skip

    def send_campaign(self, subject: str) -> requests.Response:
        """Create a campaign to the two members and send it now: the answer."""
        created = self.api("POST", "campaigns", {
            "name": subject, "subject": subject, "from_name": "Shop",
            "from_email": "news@shop.example", "html": "<p>Hello {{ email }}</p>",
            "list_ids[0]": str(self.seed["list"]),
        })  # fmt: skip
        assert created.status_code == 201, created.text
        return self.api("POST", f"campaigns/{created.json()['id']}/send")


SEED = """
import json
from django.contrib.auth.models import Group
from accounts import services
from accounts.models import ManagerAccess, Role
from campaigns.models import SenderDomain
from members import services as members

account = services.account_create(name="Fault Shop", manager_access=ManagerAccess.ASK)
services.user_create(email="owner@shop.example", role=Role.OWNER, account=account,
                     password="PASSWORD", must_change_password=False)
tech = services.user_create(email="TECHNICIAN", role=Role.ADMIN, password="PASSWORD",
                            must_change_password=False)
Group.objects.get(name="Technicians").user_set.add(tech)
SenderDomain.objects.create(account=account, domain="shop.example", verified=True)
lst = members.list_create(account=account, name="Faults")
for address in ("ann@members.example", "bo@members.example"):
    members.member_create(member_list=lst, values={"email": address})
key, secret = services.apikey_create(account=account, name="faults")
print(json.dumps({"email": "owner@shop.example", "list": lst.pk, "key": key.key,
                  "secret": secret}))
""".replace("PASSWORD", PASSWORD).replace("TECHNICIAN", TECHNICIAN)
