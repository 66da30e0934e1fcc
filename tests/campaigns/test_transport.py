"""The SMTP transport against real servers: STARTTLS and implicit TLS with certificate
checks, a login, the relay's answers, and a dropped connection."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from campaigns.transport import Outcome, Outgoing, SmtpTransport


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Handler:
    def __init__(self, *, pipelining: bool = False) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.pipelining = pipelining
        self.commands: list[str] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        if address.startswith("blocked@"):
            return "553 5.7.1 Sender blocked"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("full@"):
            return "452 4.2.2 Mailbox full"
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"relay-user" and auth_data.password == b"relay-pass"
    return AuthResult(success=ok)


@pytest.fixture
def tls_context(certificate) -> ssl.SSLContext:
    cert_file, key_file = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def starttls_relay(tls_context) -> Iterator[tuple[int, Handler]]:
    handler = Handler()
    port = _port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls_context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
    )
    controller.start()
    yield port, handler
    controller.stop()


def _message(to: str = "ann@example.net") -> Outgoing:
    return Outgoing(
        envelope_from="bounces+x@shop.example",
        to=to,
        from_header="news@shop.example",
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi",
        raw=b"From: news@shop.example\r\nTo: ann@example.net\r\nSubject: Hi\r\n\r\nHi\r\n",
    )


def _use(settings, port: int, *, starttls: bool = False, ssl_on: bool = False) -> None:
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL = starttls, ssl_on
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "relay-user", "relay-pass"


def test_starttls_with_a_trusted_certificate_and_a_login_delivers(
    settings, starttls_relay, certificate, monkeypatch
):
    port, handler = starttls_relay
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    _use(settings, port, starttls=True)
    transport = SmtpTransport()
    try:
        assert transport.send(_message()).outcome is Outcome.ACCEPTED
        # One connection for many messages.
        connection = transport.connection
        assert transport.send(_message("bo@example.net")).outcome is Outcome.ACCEPTED
        assert transport.connection is connection
    finally:
        transport.close()
    assert [m[1] for m in handler.messages] == [["ann@example.net"], ["bo@example.net"]]
    assert handler.messages[0][0] == "bounces+x@shop.example"


def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(settings, starttls_relay):
    port, handler = starttls_relay
    _use(settings, port, starttls=True)
    transport = SmtpTransport()
    answer = transport.send(_message())
    assert answer.outcome is Outcome.RELAY_DOWN
    assert "certificate" in answer.reason.lower()
    assert handler.messages == []


def test_implicit_tls_checks_the_certificate_too(settings, tls_context, certificate, monkeypatch):
    handler = Handler()
    port = _port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ssl_context=tls_context,
        authenticator=_authenticate,
        auth_required=True,
        auth_require_tls=False,  # it is TLS from the first byte; aiosmtpd cannot tell
    )
    controller.start()
    try:
        _use(settings, port, ssl_on=True)
        assert SmtpTransport().send(_message()).outcome is Outcome.RELAY_DOWN
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        transport = SmtpTransport()
        assert transport.send(_message()).outcome is Outcome.ACCEPTED
        transport.close()
    finally:
        controller.stop()
    assert len(handler.messages) == 1


def test_the_relays_4xx_defers_and_5xx_refuses_with_its_reason(
    settings, starttls_relay, certificate, monkeypatch
):
    port, _ = starttls_relay
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    _use(settings, port, starttls=True)
    transport = SmtpTransport()
    try:
        full = transport.send(_message("full@example.net"))
        nobody = transport.send(_message("nobody@example.net"))
        fine = transport.send(_message())
    finally:
        transport.close()
    assert (full.outcome, full.code) == (Outcome.DEFERRED, 452)
    assert "Mailbox full" in full.reason
    assert (nobody.outcome, nobody.code) == (Outcome.REFUSED, 550)
    assert "5.1.1 No such user" in nobody.reason
    assert fine.outcome is Outcome.ACCEPTED


def test_a_wrong_password_is_the_relay_being_unavailable_not_the_recipients_fault(
    settings, starttls_relay, certificate, monkeypatch
):
    port, handler = starttls_relay
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    _use(settings, port, starttls=True)
    settings.EMAIL_HOST_PASSWORD = "wrong"
    settings.EMAIL_TIMEOUT = 3  # aiosmtpd never answers a failed AUTH LOGIN; relays do
    answer = SmtpTransport().send(_message())
    assert answer.outcome is Outcome.RELAY_DOWN
    assert handler.messages == []


def test_nothing_listening_is_the_relay_being_down(settings):
    _use(settings, _port())
    settings.EMAIL_HOST_USER = ""
    answer = SmtpTransport().send(_message())
    assert answer.outcome is Outcome.RELAY_DOWN
    assert "unavailable" in answer.reason


def test_with_an_esp_configured_the_message_goes_through_anymail_with_its_delivery_id(
    settings, mailoutbox
):
    from campaigns.transport import DjangoTransport, new_transport

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    transport = new_transport()
    assert isinstance(transport, DjangoTransport)
    message = _message()
    message.delivery_id = 7
    message.headers = [("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    assert transport.send(message).outcome is Outcome.ACCEPTED
    [sent] = mailoutbox
    assert sent.to == ["ann@example.net"]
    assert sent.metadata == {"delivery_id": "7"}  # the bounce webhook finds the row by it
    assert sent.envelope_sender == "bounces+x@shop.example"
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent.alternatives[0][1] == "text/html"


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def plain_relay(request, settings) -> Iterator[Handler]:
    """A relay without TLS or login that offers PIPELINING (as Postfix does) or not."""
    handler = Handler(pipelining=request.param)
    port = _port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    _use(settings, port)
    settings.EMAIL_HOST_USER = ""
    yield handler
    controller.stop()


def test_every_answer_of_the_relay_is_read_right_with_or_without_pipelining(plain_relay):
    transport = SmtpTransport()
    blocked = _message()
    blocked.envelope_from = "blocked@shop.example"
    try:
        answers = [
            transport.send(_message("full@example.net")),
            transport.send(_message("nobody@example.net")),
            transport.send(blocked),
            transport.send(_message("ann@example.net")),
            transport.send(_message("bo@example.net")),
        ]
        assert transport.connection is not None
        offered = transport.connection.has_extn("pipelining")
    finally:
        transport.close()
    assert offered is plain_relay.pipelining
    assert [(a.outcome, a.code) for a in answers] == [
        (Outcome.DEFERRED, 452),
        (Outcome.REFUSED, 550),
        (Outcome.REFUSED, 553),
        (Outcome.ACCEPTED, 250),
        (Outcome.ACCEPTED, 250),
    ]
    assert "Sender blocked" in answers[2].reason
    # Only the accepted ones arrived, each once, on the one connection.
    assert [(to, mail_from) for mail_from, to, _ in plain_relay.messages] == [
        (["ann@example.net"], "bounces+x@shop.example"),
        (["bo@example.net"], "bounces+x@shop.example"),
    ]


def test_lines_starting_with_a_dot_arrive_as_written(plain_relay):
    message = _message()
    message.raw = (
        b"From: news@shop.example\r\nTo: ann@example.net\r\nSubject: Dots\r\n\r\n"
        b".starts with a dot\r\n..two dots\r\n.\r\nlast line"
    )
    transport = SmtpTransport()
    try:
        assert transport.send(message).outcome is Outcome.ACCEPTED
    finally:
        transport.close()
    ((_, _, content),) = plain_relay.messages
    body = content.split(b"\r\n\r\n", 1)[1]
    assert body == b".starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n"


def test_bare_newlines_go_out_as_crlf_when_pipelining():
    from campaigns.transport import _data

    assert _data(b"a\nb\rc\r\n.d") == b"a\r\nb\r\nc\r\n..d\r\n.\r\n"
    assert _data(b".x\r\n") == b"..x\r\n.\r\n"
