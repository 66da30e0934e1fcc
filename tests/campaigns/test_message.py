"""The message bytes: headers, both parts, encodings, line lengths, Message-IDs and DKIM.
Every message is parsed back with the email package, as a receiving client would."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import random
import re
import time
from binascii import a2b_qp
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from campaigns import message as message_module
from campaigns.message import (
    build_mime,
    dkim_sign,
    encoded_body,
    make_message_id,
    qp_careful,
    qp_fragment,
)
from campaigns.templating import compile_campaign

UNSUBSCRIBE = "https://mail.heyloyalty.test/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
HEADERS = (
    (
        "List-Unsubscribe",
        f"<{UNSUBSCRIBE}>, <mailto:unsubscribe+AAAAAAAAAAAAAAAAAAAAAAAAAAAA@bounce.bakery.example"
        "?subject=unsubscribe>",
    ),
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
)
HTML = "<html><body><h1>Hej Søren 🎉</h1><p>Æbler, øl og ål &amp; mere</p></body></html>"
TEXT = "Hej Søren 🎉\n\nÆbler, øl og ål & mere\n"


def build(**overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "from_name": "Bageren på Hjørnet 🥐",
        "from_email": "news@bakery.example",
        "to": "soren@example.dk",
        "subject": "Tilbud til dig, Søren 🎉",
        "html": HTML,
        "text": TEXT,
        "message_id": "<42.abc@bakery.example>",
        "reply_to": "svar@bakery.example",
        "headers": HEADERS,
    }
    arguments.update(overrides)
    return build_mime(**arguments)


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(parsed: EmailMessage, kind: str) -> str:
    """A part's text, its line ends as "\\n" (the email package keeps the CRLFs)."""
    part = parsed.get_body((kind,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


# Headers and parts


def test_a_message_parses_back_with_every_header_and_both_parts():
    parsed = parse(build())

    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Message-ID"] == "<42.abc@bakery.example>"
    assert parsed["From"].addresses[0].display_name == "Bageren på Hjørnet 🥐"
    assert parsed["From"].addresses[0].addr_spec == "news@bakery.example"
    assert parsed["To"] == "soren@example.dk"
    assert parsed["Reply-To"] == "svar@bakery.example"
    assert parsed["Subject"] == "Tilbud til dig, Søren 🎉"
    assert parsed["List-Unsubscribe"] == HEADERS[0][1]
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert abs(parsedate_to_datetime(parsed["Date"]).timestamp() - time.time()) < 5
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert body(parsed, "plain") == TEXT
    assert body(parsed, "html").rstrip("\n") == HTML


def test_no_reply_to_when_none_is_given_and_extra_headers_are_optional():
    parsed = parse(build(reply_to="", headers=()))
    assert "Reply-To" not in parsed
    assert "List-Unsubscribe" not in parsed


def test_the_message_is_ascii_with_crlf_lines_within_the_limits():
    # (A List-Unsubscribe URL is one word longer than 78 characters: left out here.)
    raw = build(subject="Søren " * 40, from_name="Ærø Æbleplantage og Ølbryggeri " * 3, headers=())

    assert raw.isascii()
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert all(len(line) <= 76 for line in rest.split(b"\r\n"))
    for line in head.split(b"\r\n"):
        if b"=?utf-8?" in line:
            assert len(line) <= 76  # RFC 2047
    parsed = parse(raw)
    assert parsed["Subject"] == "Søren " * 40
    assert (
        parsed["From"].addresses[0].display_name == ("Ærø Æbleplantage og Ølbryggeri " * 3).strip()
    )


def test_long_list_headers_fold_between_the_urls():
    raw = build()
    assert b"\r\nList-Unsubscribe: <https://" in raw
    assert b">,\r\n <mailto:unsubscribe+" in raw


def test_a_long_ascii_subject_is_folded_and_unfolds_to_itself():
    subject = "Weekly news from the bakery on the corner: " * 4
    raw = build(subject=subject.strip())
    assert re.search(rb"Subject: [^\r]{1,78}\r\n [^\r]", raw)
    assert parse(raw)["Subject"] == subject.strip()


def test_a_subject_that_looks_like_an_encoded_word_is_encoded():
    raw = build(subject="=?utf-8?q?not_a_word?=")
    assert b"Subject: =?utf-8?b?" in raw
    assert parse(raw)["Subject"] == "=?utf-8?q?not_a_word?="


@pytest.mark.parametrize(
    "name",
    ['Bageren, "Hjørnet"', "A. B. Jensen", "Bo (bager) <b@x>", "Plain Name", 'Back\\slash "q"'],
)
def test_display_names_with_specials_are_quoted_or_encoded(name):
    parsed = parse(build(from_name=name))
    assert parsed["From"].addresses[0].display_name == name
    assert parsed["From"].addresses[0].addr_spec == "news@bakery.example"


def test_without_a_display_name_from_is_the_address():
    assert b"\r\nFrom: news@bakery.example\r\n" in build(from_name="")


def test_line_breaks_in_header_values_cannot_add_headers():
    raw = build(
        subject="Hi\r\nBcc: victim@example.com",
        from_name="Evil\nX-Injected: 1",
        to="a@example.dk\r\nCc: b@example.com",
    )
    parsed = parse(raw)
    assert "Bcc" not in parsed and "Cc" not in parsed and "X-Injected" not in parsed
    assert parsed["Subject"] == "Hi Bcc: victim@example.com"


def test_each_message_has_its_own_boundary_which_no_body_contains():
    first, second = build(), build()
    boundary = re.search(rb'boundary="([^"]+)"', first)
    assert boundary is not None
    assert boundary[1] != re.search(rb'boundary="([^"]+)"', second)[1]  # type: ignore[index]
    assert boundary[1].startswith(b"=_")


# Bodies


def test_lines_starting_with_a_dot_or_from_are_encoded():
    text = ".\n.hidden\nFrom here on\nFromage\n" + "x" * 75 + ".dot after a soft break\n"
    raw = build(text=text, html=text)
    for line in raw.split(b"\r\n"):
        assert not line.startswith((b".", b"From "))
    parsed = parse(raw)
    assert body(parsed, "plain") == text
    assert body(parsed, "html") == text


def test_quoted_printable_round_trips_anything():
    rng = random.Random(7)  # noqa: S311 - a fixed seed: the same cases every run
    alphabet = [
        "a",
        "Z",
        " ",
        "\t",
        "=",
        ".",
        "From ",
        "\n",
        "\r\n",
        "\r",
        "æ",
        "🎉",
        "\x00",
        "x" * 90,
    ]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        expected = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        for encoded in (qp_fragment(text), qp_careful(expected.encode())):
            assert a2b_qp(encoded).decode() == expected
            lines = encoded.split(b"\r\n")
            assert all(len(line) <= 76 for line in lines)
            assert not any(line.startswith((b".", b"From ")) for line in lines)
            assert not any(line.endswith((b" ", b"\t")) for line in lines)
            assert encoded.isascii()


def test_a_body_that_carries_its_encoded_form_is_used_as_it_is():
    raw = build(text=encoded_body("ignored", b"pre-encoded =C3=A6\r\n"))
    assert body(parse(raw), "plain") == "pre-encoded æ\n"


def test_a_rendered_campaign_builds_into_the_same_message_as_plain_strings(settings):
    settings.PUBLIC_URL = "https://mail.heyloyalty.test"
    campaign = compile_campaign(
        subject="Hej {{ firstname }}",
        preheader="Nyt",
        html='<body><h1>Hej {{ firstname }}</h1><p>.{{ city }}</p><a href="https://x.example">'
        "Køb</a></body>",
        text="",
        field_names=["firstname", "city"],
        fallbacks={},
        tracking=True,
    )
    rendered = campaign.render(
        values={"firstname": "Søren <3", "city": "From Køge"},
        delivery_id=12,
        unsubscribe_url=UNSUBSCRIBE,
    )
    fast = parse(build(subject=rendered.subject, html=rendered.html, text=rendered.text))
    slow = parse(build(subject=rendered.subject, html=str(rendered.html), text=str(rendered.text)))

    assert type(str(rendered.html)) is str
    assert body(fast, "html") == body(slow, "html") == rendered.html
    assert body(fast, "plain") == body(slow, "plain") == rendered.text
    assert "Søren &lt;3" in body(fast, "html")


# Message-ID


def test_message_ids_are_stable_per_delivery_and_unique():
    first = make_message_id(delivery_id=7, domain="bakery.example")

    assert re.fullmatch(r"<7\.[0-9a-f]{16}@bakery\.example>", first)
    assert make_message_id(delivery_id=7, domain="bakery.example") == first
    assert make_message_id(delivery_id=8, domain="bakery.example") != first
    random_ids = {make_message_id(delivery_id=None, domain="bakery.example") for _ in range(1000)}
    assert len(random_ids) == 1000
    assert all(re.fullmatch(r"<[0-9a-f]{32}@bakery\.example>", i) for i in random_ids)


def test_message_ids_of_another_installation_differ(settings):
    mine = make_message_id(delivery_id=7, domain="bakery.example")
    settings.SECRET_KEY = "another-installation-" + "k" * 50
    assert make_message_id(delivery_id=7, domain="bakery.example") != mine


# DKIM


@pytest.fixture(scope="module")
def dkim_key() -> tuple[str, bytes]:
    """A private key as PEM text and the DNS TXT record of its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.fixture
def dkim_settings(settings, dkim_key):
    settings.DKIM_PRIVATE_KEY = dkim_key[0]
    settings.DKIM_SELECTOR = "hl2026"
    settings.DKIM_DOMAIN = "bakery.example"
    return settings


def dns(record: bytes):
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"hl2026._domainkey.bakery.example." else None

    return lookup


def test_without_dkim_settings_the_message_is_unchanged(settings):
    settings.DKIM_PRIVATE_KEY = ""
    raw = build()
    assert dkim_sign(raw) is raw


def test_a_signed_message_verifies_and_covers_the_unsubscribe_headers(dkim_settings, dkim_key):
    signed = dkim_sign(build())

    assert signed.startswith(b"DKIM-Signature: ")
    assert dkim.verify(signed, dnsfunc=dns(dkim_key[1]))
    signature = parse(signed)["DKIM-Signature"]
    tags = dict(
        item.strip().split("=", 1) for item in "".join(signature.split()).split(";") if item
    )
    assert tags["d"] == "bakery.example" and tags["s"] == "hl2026"
    signed_headers = tags["h"].split(":")
    for name in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ]:
        assert name in signed_headers
    assert signed_headers.count("from") == 2  # signed once more than it occurs


def test_a_changed_message_no_longer_verifies(dkim_settings, dkim_key):
    signed = dkim_sign(build())
    for tampered in [
        signed.replace(
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: x"
        ),
        signed.replace(b"=C3=86bler", b"=C3=85bler"),
        signed.replace(b"\r\nTo: ", b"\r\nSubject: extra\r\nTo: "),
    ]:
        assert tampered != signed
        assert not dkim.verify(tampered, dnsfunc=dns(dkim_key[1]))


def test_a_key_given_on_one_line_with_escaped_newlines_works(dkim_settings, dkim_key):
    dkim_settings.DKIM_PRIVATE_KEY = dkim_key[0].strip().replace("\n", "\\n")
    assert dkim.verify(dkim_sign(build()), dnsfunc=dns(dkim_key[1]))


def test_openssl_makes_the_very_signature_dkimpy_would(dkim_settings, dkim_key):
    """dkim_sign hands dkimpy's RSA step to OpenSSL; PKCS#1 v1.5 is deterministic, so the
    signature must be the one dkimpy's own code makes."""
    message_module._dkim()  # installs the OpenSSL step and the key cache
    assert dkim.RSASSA_PKCS1_v1_5_sign.__module__ == "campaigns.message"
    assert hasattr(dkim.parse_pem_private_key, "cache_info")
    from dkim import crypto

    private = crypto.parse_pem_private_key(dkim_key[0].encode())
    digest = hashlib.sha256(b"the headers")
    assert dkim.RSASSA_PKCS1_v1_5_sign(digest, private) == crypto.RSASSA_PKCS1_v1_5_sign(
        digest, private
    )
