"""Handing one message to the mail relay, and what the relay answered.

`SmtpTransport` keeps one SMTP connection open per worker process and sends the bytes the
pipeline built (the fast path). `DjangoTransport` hands the parts to Django's configured
email backend, for ESPs through django-anymail. Both answer with an `Answer`: accepted,
deferred (4xx: try again later), refused (5xx: this recipient fails) or relay_down (no
answer about this recipient at all: the message goes back in the queue).
"""

from __future__ import annotations

import contextlib
import enum
import re
import smtplib
import ssl
from dataclasses import dataclass, field

from django.conf import settings
from django.core import mail


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DEFERRED = "deferred"
    REFUSED = "refused"
    RELAY_DOWN = "relay_down"


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    code: int = 0
    reason: str = ""


ACCEPTED = Answer(Outcome.ACCEPTED, 250)


@dataclass
class Outgoing:
    """One message. `raw` is built only for transports that send bytes."""

    envelope_from: str
    to: str
    from_header: str
    subject: str
    html: str
    text: str
    reply_to: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delivery_id: int | None = None
    raw: bytes = b""


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:1000]


def answer_for(code: int, message: bytes | str) -> Answer:
    reason = f"{code} {_text(message)}".strip()
    if 400 <= code < 500:
        return Answer(Outcome.DEFERRED, code, reason)
    if 500 <= code < 600:
        return Answer(Outcome.REFUSED, code, reason)
    return Answer(Outcome.RELAY_DOWN, code, reason)


class SmtpTransport:
    """One open connection, reopened when the relay drops it."""

    wants_raw = True

    def __init__(self) -> None:
        self.connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        host, port = settings.EMAIL_HOST, int(settings.EMAIL_PORT)
        timeout = settings.EMAIL_TIMEOUT
        context = ssl.create_default_context()  # certificates and host names checked
        connection: smtplib.SMTP
        if settings.EMAIL_USE_SSL:
            connection = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            connection = smtplib.SMTP(host, port, timeout=timeout)
            if settings.EMAIL_USE_TLS:
                connection.starttls(context=context)
        if settings.EMAIL_HOST_USER:
            connection.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
        connection.ehlo_or_helo_if_needed()  # what the relay offers, PIPELINING above all
        return connection

    def send(self, message: Outgoing) -> Answer:
        """Send; on a dropped connection, reconnect once and try again."""
        for attempt in (1, 2):
            try:
                if self.connection is None:
                    self.connection = self._connect()
                return self._send(self.connection, message)
            except smtplib.SMTPServerDisconnected as error:
                self.close()
                if attempt == 2:
                    return Answer(Outcome.RELAY_DOWN, 0, f"relay disconnected: {error}")
            except (OSError, smtplib.SMTPException) as error:
                # Refused connection, timeout, TLS or login failure: nothing was said
                # about this recipient.
                self.close()
                return Answer(Outcome.RELAY_DOWN, 0, f"relay unavailable: {error}")
        raise AssertionError("unreachable")

    @staticmethod
    def _send(connection: smtplib.SMTP, message: Outgoing) -> Answer:
        if connection.has_extn("pipelining"):
            return _send_pipelined(connection, message)
        try:
            refused = connection.sendmail(message.envelope_from, [message.to], message.raw)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            return answer_for(code, text)
        except smtplib.SMTPSenderRefused as error:
            connection.rset()
            return answer_for(error.smtp_code, error.smtp_error)
        except smtplib.SMTPDataError as error:
            return answer_for(error.smtp_code, error.smtp_error)
        if refused:  # only with several recipients; kept for completeness
            code, text = next(iter(refused.values()))
            return answer_for(code, text)
        return ACCEPTED

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None


def _envelope(address: str, smtputf8: bool) -> bytes | None:
    """An envelope address as the relay reads it; None when it cannot take it."""
    try:
        return address.encode("ascii")
    except UnicodeEncodeError:
        return address.encode("utf-8") if smtputf8 else None


def _data(raw: bytes) -> bytes:
    """The message as the DATA section carries it: CRLF line ends, a dot doubled at the
    start of a line, and the end marker. build_mime's output needs neither fix (CRLF
    throughout, no line starts with a dot), so this is two scans, not smtplib's regex."""
    if raw.count(b"\n") != raw.count(b"\r\n") or raw.count(b"\r") != raw.count(b"\r\n"):
        raw = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    if raw.startswith(b".") or b"\r\n." in raw:
        raw = (b"." if raw.startswith(b".") else b"") + raw.replace(b"\r\n.", b"\r\n..")
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


def _send_pipelined(connection: smtplib.SMTP, message: Outgoing) -> Answer:
    """MAIL, RCPT and DATA in one write and their three replies read together, then the
    message and its reply (RFC 2920): two round trips a message instead of four."""
    smtputf8 = connection.has_extn("smtputf8")
    sender = _envelope(message.envelope_from, smtputf8)
    recipient = _envelope(message.to, smtputf8)
    if sender is None or recipient is None:
        return Answer(Outcome.REFUSED, 553, "553 the relay does not take non-ASCII addresses")
    options = b"" if (sender + recipient).isascii() else b" SMTPUTF8"
    connection.send(
        b"MAIL FROM:<" + sender + b">" + options + b"\r\nRCPT TO:<" + recipient + b">\r\nDATA\r\n"
    )
    replies = [connection.getreply() for _command in range(3)]
    data_code, data_text = replies[2]
    failed = next(((code, text) for code, text in replies[:2] if not 200 <= code < 300), None)
    if data_code == 354:
        if failed is not None:  # a relay that let DATA through anyway: send nothing
            connection.send(b".\r\n")
            connection.getreply()
        else:
            connection.send(_data(message.raw))
            code, text = connection.getreply()
            return ACCEPTED if 200 <= code < 300 else answer_for(code, text)
    if failed is None:
        failed = (data_code, data_text)
    # A relay that hung up after its answer (421): the next message reconnects.
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        connection.rset()
    return answer_for(*failed)


class DjangoTransport:
    """Through EMAIL_BACKEND (django-anymail for an ESP): the ESP reports bounces and
    complaints later through its tracking webhook."""

    wants_raw = False

    def __init__(self) -> None:
        self.connection = mail.get_connection(fail_silently=False)

    def send(self, message: Outgoing) -> Answer:
        email = mail.EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=message.from_header,
            to=[message.to],
            reply_to=[message.reply_to] if message.reply_to else None,
            headers=dict(message.headers),
            connection=self.connection,
        )
        email.attach_alternative(message.html, "text/html")
        # Read by django-anymail; the bounce webhook finds the delivery by it.
        email.metadata = {"delivery_id": str(message.delivery_id or "")}  # type: ignore[attr-defined]
        email.envelope_sender = message.envelope_from  # type: ignore[attr-defined]
        try:
            email.send()
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            return answer_for(code, text)
        except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as error:
            return Answer(Outcome.RELAY_DOWN, 0, f"relay unavailable: {error}")
        except smtplib.SMTPResponseException as error:
            return answer_for(error.smtp_code, error.smtp_error)
        except Exception as error:
            return Answer(Outcome.RELAY_DOWN, 0, f"{type(error).__name__}: {_text(str(error))}")
        return ACCEPTED

    def close(self) -> None:
        self.connection.close()


Transport = SmtpTransport | DjangoTransport


def uses_smtp() -> bool:
    return bool(settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend")


_shared: Transport | None = None


def shared_transport() -> Transport:
    """The worker process's transport, kept between tasks so the connection stays open."""
    global _shared
    if _shared is None:
        _shared = SmtpTransport() if uses_smtp() else DjangoTransport()
    return _shared


def new_transport() -> Transport:
    return SmtpTransport() if uses_smtp() else DjangoTransport()
