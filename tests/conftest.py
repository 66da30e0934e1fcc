"""Personas shared by every test.

Alice owns account A, Bob is a user of A, Carol owns account B (and must see nothing
of A), Mallory is the account manager of A, Root is a main admin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import Client
from django.test.client import ClientMixin

from accounts import services
from accounts.models import Account, ManagerAccess, Role, User

PASSWORD = "tr0ub4dor-and-3-horses"


@dataclass
class Personas:
    account_a: Account
    account_b: Account
    alice: User
    bob: User
    carol: User
    mallory: User
    root: User
    password: str = PASSWORD


def make_personas() -> Personas:
    mallory = services.user_create(
        email="mallory@heyloyalty.test",
        name="Mallory Manager",
        role=Role.MANAGER,
        password=PASSWORD,
        must_change_password=False,
    )
    other_manager = services.user_create(
        email="oscar@heyloyalty.test",
        name="Oscar Othermanager",
        role=Role.MANAGER,
        password=PASSWORD,
        must_change_password=False,
    )
    account_a = services.account_create(
        name="Account A Bakery", manager=mallory, manager_access=ManagerAccess.ALLOWED
    )
    account_b = services.account_create(
        name="Account B Bikes", manager=other_manager, manager_access=ManagerAccess.ASK
    )

    def customer(email: str, name: str, role: Role, account: Account) -> User:
        return services.user_create(
            email=email,
            name=name,
            role=role,
            account=account,
            password=PASSWORD,
            must_change_password=False,
        )

    return Personas(
        account_a=account_a,
        account_b=account_b,
        alice=customer("alice@a.test", "Alice Owner", Role.OWNER, account_a),
        bob=customer("bob@a.test", "Bob User", Role.USER, account_a),
        carol=customer("carol@b.test", "Carol Owner", Role.OWNER, account_b),
        mallory=mallory,
        root=services.user_create(
            email="root@heyloyalty.test",
            name="Root Admin",
            role=Role.ADMIN,
            password=PASSWORD,
            must_change_password=False,
        ),
    )


# Django's own force_login: a session signed in with the password alone.
_password_only_login = ClientMixin.force_login


def password_only_login(client: Client, user: User) -> None:
    """A session that has not given the second factor, as one from before the user became
    staff or turned two-factor sign-in on (accounts.middleware.TwoFactorRequiredMiddleware)."""
    _password_only_login(client, user)


def second_factor_given(client: Client, user: User) -> None:
    """Mark the client's session verified by the user's authenticator app, as the code step
    does (django_otp's login, accounts.two_factor.finish), for those who need it; staff
    without an app get one first."""
    from django_otp import login as otp_login
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts import two_factor

    if not two_factor.required(user):
        return
    device = two_factor.confirmed_device(user) or TOTPDevice.objects.create(
        user=user, name="Test phone", confirmed=True
    )
    request = HttpRequest()
    request.session = client.session
    request.user = user
    otp_login(request, device)
    request.session.save()


@pytest.fixture(autouse=True)
def force_login_gives_the_second_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    """``client.force_login(user)`` signs in as a person does: password and, where needed,
    the code (``second_factor_given``). ``password_only_login`` for a session without it."""

    def force_login(self: ClientMixin, user: User, backend: str | None = None) -> None:
        _password_only_login(self, user, backend)
        second_factor_given(self, user)  # type: ignore[arg-type]

    monkeypatch.setattr(ClientMixin, "force_login", force_login)


@pytest.fixture(autouse=True)
def fast_password_hashing(request, settings):
    """Cheap argon2id in tests, except where a test asks for the real parameters."""
    if "real_hashing" not in request.keywords:
        settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher"]


@pytest.fixture
def personas(db: None) -> Personas:
    return make_personas()


@pytest.fixture
def live_personas(transactional_db: None) -> Personas:
    """Personas committed to the database, for other processes (browser, worker, pg_dump)."""
    return make_personas()


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on a free port; Django's mail goes to it."""
    import email
    import socket

    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.original_content or envelope.content)
            self.messages.append((envelope.rcpt_tos, message))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield SmtpSink("127.0.0.1", port, handler.messages)
    controller.stop()


@dataclass
class LiveWorker:
    """The worker process of ``live_worker``: its queue and its log."""

    queue: str
    log: Path

    def send(self, task: Any, *args: Any) -> None:
        """Queue ``task(*args)`` for this worker."""
        task.apply_async(args=args, queue=self.queue)

    def route(self, monkeypatch: pytest.MonkeyPatch, *tasks: Any) -> None:
        """Make the code under test queue these tasks (their ``delay``) for this worker."""
        for task in tasks:
            monkeypatch.setattr(
                task, "delay", lambda *a, _t=task, **kw: _t.apply_async(a, kw, queue=self.queue)
            )

    def position(self) -> int:
        """Where the log ends now; ``output(since=…)`` reads what came after."""
        return self.log.stat().st_size

    def output(self, since: int = 0) -> str:
        with self.log.open("rb") as handle:
            handle.seek(since)
            return handle.read().decode(errors="replace")


@pytest.fixture(scope="session")
def live_worker(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveWorker]:
    """A real Celery worker process, started once for the session on the test database.

    It consumes only a queue of its own (pid and a random part in the name), so test runs
    side by side never take each other's tasks; send to it with ``send`` or ``route``.
    At the end it is stopped and its queue's keys are deleted from Redis. Tests that use it
    write committed data: ``@pytest.mark.django_db(transaction=True)``.
    """
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    queue = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("celery-worker") / "worker.log"
    command = [sys.executable, "-m", "celery", "--app", "heyloyalty", "worker"]
    command += ["--pool", "solo", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    command += ["--loglevel", "WARNING", "--queues", queue, "--hostname", f"{queue}@%h"]
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@"
                f"{db['HOST']}:{db['PORT']}/{db['NAME']}",
            },
        )
    try:
        yield LiveWorker(queue, log)
    finally:
        _stop(worker)
        _forget_queue(settings.REDIS_URL, queue)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # Celery's warm shutdown: the task in hand ends first
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _forget_queue(redis_url: str, queue: str) -> None:
    """Delete what the broker keeps for the queue (its list, priority lists, binding)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
