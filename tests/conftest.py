"""Personas shared by every test.

Alice owns account A, Bob is a user of A, Carol owns account B (and must see nothing
of A), Mallory is the account manager of A, Root is a main admin.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

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
