"""What the webhook delivery tests share: a real HTTP receiver on a free port that records
every request and answers as told, tasks run in-process, and a list with a webhook.

Imported by the test_webhook_delivery* modules (their fixtures); it holds no test itself.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from accounts.services import apikey_create
from members import services, tasks
from members.fields import FieldSpec
from members.models import List, Webhook
from members.webhooks import webhook_create
from tests.api.conftest import Api
from tests.conftest import Personas


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address: one per connection

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: longer than the timeout is no answer


class Receiver:
    """A real HTTP/1.1 server (keep-alive) in a thread, over TLS when given a context.
    ``answers`` are used in turn, then ``default``; every request is kept in ``requests``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.answers: list[Answer] = []
        self.default = Answer()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(
                    Request(self.path, dict(self.headers.items()), body, self.client_address)
                )
                answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if answer.delay:
                    receiver.released.wait(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, seconds: float = 5.0) -> list[Request]:
        deadline = time.monotonic() + seconds
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def allow_private(settings) -> None:
    """The receiver listens on 127.0.0.1, which production refuses."""
    settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, tuple[Any, ...]]]:
    """The webhook tasks run in this process when queued; each call is recorded."""
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def inline(task: Any) -> None:
        def delay(*args: Any) -> Any:
            calls.append((task.name.rsplit(".", 1)[-1], args))
            return task(*args)

        monkeypatch.setattr(task, "delay", delay)

    for task in (tasks.webhook_send, tasks.webhook_disabled_notice, tasks.webhooks_import_emit):
        inline(task)
    return calls


@pytest.fixture
def shop(personas: Personas) -> List:
    """Alice's list with a custom field and a choice field."""
    return services.list_create(
        account=personas.account_a,
        name="Shop",
        fields=[
            FieldSpec("points", "number", "Points"),
            FieldSpec("shoe", "choice", "Shoe size", options=["40", "41", "42"]),
        ],
    )


@dataclass
class Hook:
    webhook: Webhook
    secret: str


def make_hook(member_list: List, url: str, *events: str, contact: str = "") -> Hook:
    webhook, secret = webhook_create(
        member_list=member_list, url=url, events=list(events), contact_email=contact
    )
    return Hook(webhook, secret)


@pytest.fixture
def alice_api(personas: Personas) -> Api:
    api_key, secret = apikey_create(account=personas.account_a, name="shop")
    return Api(api_key.key, secret)


@pytest.fixture
def carol_api(personas: Personas) -> Api:
    api_key, secret = apikey_create(account=personas.account_b, name="carol")
    return Api(api_key.key, secret)


def self_signed(host: str, directory: Path) -> Path:
    """A certificate and key for ``host`` in one PEM file, signed by itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    # Wide validity: OpenSSL checks it against the real clock, which the tests move.
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{host}.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path
