"""The bytes of a campaign message, built for the sending pipeline's hot path.

The ``email`` package takes about 4 ms to build and flatten an 8 KB two-part message on
our machines (bench/render.py); a worker that is to send 2,000 messages a second on two
cores has a millisecond for everything. So the message is written out directly: headers
as ASCII (RFC 2047 encoded-words where a subject or a display name needs them), folded
under 78 characters, and a multipart/alternative body whose text and HTML parts are
UTF-8 quoted-printable (by the C-coded ``binascii.b2a_qp``, or taken ready-made from an
EncodedBody that the template compiler pieced together). Lines end in CRLF and stay
within 76 characters; a line that would start with "." or "From " has that character
encoded, so the message passes unharmed through an SMTP server that forgets
dot-stuffing, or an mbox file.

The boundary begins with "=_", which quoted-printable text can never contain.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from base64 import b64encode
from binascii import b2a_qp
from collections.abc import Sequence
from email.utils import formatdate
from functools import lru_cache
from hashlib import blake2b, sha256
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from django.conf import settings

LINE = 78  # header lines are folded under this (RFC 5322)
QP_LINE = 76  # body lines are at most this long (RFC 2045)
SOFT_BREAK = b"=\r\n"
# An encoded-word carries at most this many bytes of UTF-8: 52 base64 characters, 64 for
# the word, so "Subject: " and the word stay within RFC 2047's 76 characters a line.
WORD_BYTES = 39
SPECIALS = frozenset('()<>[]:;@\\,."')

_BOUNDARY_PREFIX = "=_hl" + os.urandom(6).hex() + "."
_boundary_numbers = itertools.count()


def build_mime(
    *,
    from_name: str,
    from_email: str,
    to: str,
    subject: str,
    html: str,
    text: str,
    message_id: str,
    reply_to: str = "",
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The message: headers, then a text/plain and a text/html part."""
    boundary = f"{_BOUNDARY_PREFIX}{next(_boundary_numbers):x}"
    lines = [
        "MIME-Version: 1.0",
        f"Date: {_date()}",
        f"Message-ID: {_clean(message_id)}",
        _from_header(from_name, from_email),
        _fold(f"To: {_clean(to)}"),
        _subject_header(subject),
    ]
    if reply_to:
        lines.append(_fold(f"Reply-To: {_clean(reply_to)}"))
    for name, value in headers:
        lines.append(_fold(f"{_clean(name)}: {_clean(value)}"))
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = "\r\n".join(lines)
    part = (
        '\r\nContent-Type: {}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return b"".join(
        (
            f"{head}\r\n\r\n--{boundary}{part.format('text/plain')}".encode(),
            _quoted_printable(text),
            f"--{boundary}{part.format('text/html')}".encode("ascii"),
            _quoted_printable(html),
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )


def make_message_id(*, delivery_id: int | None, domain: str) -> str:
    """``<id@domain>``, unique. For a delivery it is the same on every attempt, so a copy
    that a crash made the pipeline send twice carries the Message-ID of the first and
    mailboxes that drop duplicates drop it; a keyed hash of the id keeps it unguessable
    and apart from another installation's ids. Without a delivery (test sends): random."""
    if delivery_id is None:
        return f"<{os.urandom(16).hex()}@{domain}>"
    digest = blake2b(str(delivery_id).encode("ascii"), key=_id_key(), digest_size=8)
    return f"<{delivery_id}.{digest.hexdigest()}@{domain}>"


def dkim_sign(message: bytes) -> bytes:
    """The message with a DKIM-Signature header on top when settings.DKIM_PRIVATE_KEY,
    DKIM_SELECTOR and DKIM_DOMAIN are set; unchanged otherwise. Signs the headers RFC 6376
    recommends plus List-Unsubscribe-Post (RFC 8058 wants both list headers covered), and
    signs the single headers once more than they occur, so none can be added unnoticed."""
    key = getattr(settings, "DKIM_PRIVATE_KEY", "")
    selector = getattr(settings, "DKIM_SELECTOR", "")
    domain = getattr(settings, "DKIM_DOMAIN", "")
    if not (key and selector and domain):
        return message
    dkim = _dkim()
    signer = dkim.DKIM(message)
    signer.add_frozen(FROZEN)  # frozen headers are signed too, whether "should" or not
    signature: bytes = signer.sign(selector.encode("ascii"), domain.encode("ascii"), _pem(key))
    return signature + message


# Headers that occur once in our messages and are signed an extra time.
FROZEN = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


# Headers


def _clean(value: str) -> str:
    """No line breaks in a header value: they would let a value add headers."""
    if "\r" in value or "\n" in value:
        return " ".join(value.splitlines())
    return value


_last_date: tuple[int, str] = (0, "")


def _date() -> str:
    global _last_date
    now = int(time.time())
    if _last_date[0] != now:
        _last_date = (now, formatdate(now, usegmt=True).replace("GMT", "+0000"))
    return _last_date[1]


@lru_cache(maxsize=64)
def _from_header(name: str, address: str) -> str:
    address = _clean(address)
    name = " ".join(_clean(name).split())
    if not name:
        return f"From: {address}"
    phrase = _encoded_phrase(name) if _needs_encoding(name) else _phrase(name)
    return _fold(f"From: {phrase} <{address}>", limit=76)


@lru_cache(maxsize=4096)  # recipients with the same first name share a subject
def _subject_header(subject: str) -> str:
    subject = _clean(subject)
    if not _needs_encoding(subject):
        return _fold(f"Subject: {subject}")
    return "Subject: " + "\r\n ".join(_encoded_words(subject))


def _needs_encoding(value: str) -> bool:
    # "=?" would be read as the start of an encoded-word.
    return not value.isascii() or "=?" in value


def _phrase(name: str) -> str:
    """A display name as RFC 5322 wants it: quoted when it holds specials."""
    if SPECIALS.isdisjoint(name):
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _encoded_phrase(name: str) -> str:
    """A display name with non-ASCII letters: plain words stay as they are and each run
    of other words becomes encoded-words. The space between two encoded-words is not
    part of the text (RFC 2047), so a run is encoded with its inner spaces, whole."""
    out: list[str] = []
    run: list[str] = []
    for word in name.split(" "):
        if word.isascii() and SPECIALS.isdisjoint(word) and "=?" not in word:
            if run:
                out.extend(_encoded_words(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.extend(_encoded_words(" ".join(run)))
    return " ".join(out)


def _encoded_words(value: str) -> list[str]:
    """RFC 2047 "B" encoded-words of at most WORD_BYTES bytes each, never splitting a
    character (continuation bytes are 0b10xxxxxx)."""
    data = value.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        words.append(f"=?utf-8?b?{b64encode(data[start:end]).decode('ascii')}?=")
        start = end
    return words


def _fold(line: str, limit: int = LINE) -> str:
    """A header line folded at spaces to stay within `limit` characters where it can. The
    first word stays beside the name: a value must not begin with the fold."""
    if len(line) <= limit:
        return line
    name, _, value = line.partition(": ")
    words = value.split(" ")
    out: list[str] = []
    current = f"{name}: {words[0]}"
    for word in words[1:]:
        if len(current) + 1 + len(word) > limit:
            out.append(current)
            current = " " + word
        else:
            current = f"{current} {word}"
    out.append(current)
    return "\r\n".join(out)


# Body


class EncodedBody(str):
    """A body that carries its own quoted-printable form (`qp`, as qp_fragment would
    encode the string), which build_mime then uses as it is. The template compiler makes
    these: it encodes a campaign's literal text once, and per message only the
    recipient's values, because b2a_qp takes well over 100 µs for 8 KB. Anything done to
    the string gives a plain str again, which build_mime encodes itself."""

    qp: bytes


def encoded_body(text: str, qp: bytes) -> EncodedBody:
    body = EncodedBody(text)
    body.qp = qp
    return body


def _quoted_printable(body: str) -> bytes:
    """The body as quoted-printable UTF-8 with CRLF line ends, and the CRLF that belongs
    to the boundary after it."""
    encoded = body.qp if type(body) is EncodedBody else qp_fragment(body)
    return encoded + b"\r\n"


# What quoted-printable cannot carry as it is, in ASCII text: controls and "=".
_QP_SPECIAL = re.compile(r"[^\t !-<>-~]")


def qp_fragment(text: str) -> bytes:
    """`text` as quoted-printable UTF-8, starting at the beginning of a line, its line
    breaks as CRLF; it need not end in one. Lines stay within 75 characters before a soft
    break, trailing whitespace and a line start of "." or "From " are encoded."""
    if text.isascii() and not _QP_SPECIAL.search(text) and not text.endswith((" ", "\t")):
        # One line of plain ASCII (a URL, most names): cut at 75 characters.
        data = text.encode("ascii")
        if len(data) < QP_LINE:
            if not data.startswith((b".", b"From ")):
                return data
        else:
            lines = [data[at : at + QP_LINE - 1] for at in range(0, len(data), QP_LINE - 1)]
            if not any(line.startswith((b".", b"From ")) for line in lines):
                return SOFT_BREAK.join(lines)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    multiline = "\n" in text
    data = (text.replace("\n", "\r\n") if multiline else text).encode("utf-8")
    # b2a_qp takes the line end for its soft breaks from the first line break it sees.
    encoded = b2a_qp(data) if multiline else b2a_qp(data).replace(b"=\n", b"=\r\n")
    if encoded.startswith((b".", b"From ")) or b"\n." in encoded or b"\nFrom " in encoded:
        return qp_careful(data)
    return encoded


_QP_BYTE = [chr(b) if 33 <= b <= 126 and b != 61 else f"={b:02X}" for b in range(256)]
_QP_BYTE[32], _QP_BYTE[9] = " ", "\t"


def qp_careful(data: bytes) -> bytes:
    """Quoted-printable in Python, for `data` with CRLF line ends: slow, and sure to encode
    a "." or "From " at the start of any line, soft-broken ones too. For literal text at
    compile time and the rare value b2a_qp leaves with such a line."""
    out: list[str] = []
    for line in data.split(b"\r\n"):
        physical: list[str] = []
        current = ""
        last = len(line) - 1
        for i, byte in enumerate(line):
            for _attempt in range(2):
                token = _QP_BYTE[byte]
                if (byte in (32, 9) and i == last) or (
                    not current and (byte == 46 or (byte == 70 and line.startswith(b"rom ", i + 1)))
                ):
                    token = f"={byte:02X}"
                if len(current) + len(token) < QP_LINE:  # room left for a soft break
                    current += token
                    break
                physical.append(current)  # the token starts the next line
                current = ""
        physical.append(current)
        out.append("=\r\n".join(physical))
    return "\r\n".join(out).encode("ascii")


# Keys


def _pem(key: str) -> bytes:
    """PEM text as dkimpy reads it: "\\n" line ends, also when the environment variable
    held the key on one line with literal "\\n"s."""
    key = key.strip().replace("\\n", "\n").replace("\r\n", "\n")
    return key.encode("ascii") + b"\n"


def _id_key() -> bytes:
    return _derive(settings.SECRET_KEY)


@lru_cache(maxsize=4)
def _derive(secret: str) -> bytes:
    return sha256(b"heyloyalty.campaigns.message-id" + secret.encode()).digest()


@lru_cache(maxsize=1)
def _dkim() -> Any:
    """dkimpy, with its RSA private-key step done by OpenSSL and its key parsing cached.

    dkimpy computes RSA in pure Python: about 13 ms a signature here, which would hold a
    worker to some 75 messages a second, and it parses the PEM key (in Python, ~0.5 ms)
    for every message. Its PKCS#1 v1.5 signature is deterministic, so OpenSSL (through
    `cryptography`, ~1 ms) gives the very same bytes; everything else (canonicalization,
    the header, folding) stays dkimpy's. Should a dkimpy release rename what is replaced
    here, signing falls back to its own code, correct but slow; test_message.py notices."""
    import dkim  # type: ignore[import-untyped]

    original = getattr(dkim, "RSASSA_PKCS1_v1_5_sign", None)
    if original is not None and getattr(original, "__module__", "") != __name__:

        def rsassa_pkcs1_v1_5_sign(hash: Any, private_key: dict[str, int]) -> bytes:
            algorithm = _HASHES.get(getattr(hash, "name", ""))
            if algorithm is None or not isinstance(private_key, dict):
                return bytes(original(hash, private_key))
            signed: bytes = _openssl_key(**private_key).sign(
                hash.digest(), padding.PKCS1v15(), Prehashed(algorithm)
            )
            return signed

        dkim.RSASSA_PKCS1_v1_5_sign = rsassa_pkcs1_v1_5_sign
    parse = getattr(dkim, "parse_pem_private_key", None)
    if parse is not None and not hasattr(parse, "cache_info"):
        dkim.parse_pem_private_key = lru_cache(maxsize=4)(parse)
    return dkim


_HASHES = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}  # noqa: S303 - rsa-sha1 is DKIM's  # nosec B303


@lru_cache(maxsize=8)
def _openssl_key(
    *,
    version: int = 0,
    modulus: int,
    publicExponent: int,
    privateExponent: int,
    prime1: int,
    prime2: int,
    exponent1: int,
    exponent2: int,
    coefficient: int,
) -> rsa.RSAPrivateKey:
    public = rsa.RSAPublicNumbers(publicExponent, modulus)
    numbers = rsa.RSAPrivateNumbers(
        prime1, prime2, privateExponent, exponent1, exponent2, coefficient, public
    )
    return numbers.private_key()
