"""The production WSGI application around Django: the layer that answers hits in front of
it gives the answers Django's views and middleware would, for every token, address and
scheme; and the scheme a proxy reports is believed only from the proxies allowed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from campaigns import tracking, tracking_wsgi
from campaigns.tokens import click_token, open_token
from heyloyalty import wsgi
from tests.campaigns.test_tracking import PERSON, Sent, flush, link, pixel, sent, tracking_buffer
from tests.campaigns.test_tracking_buffer import Inner, wsgi_get

__all__ = ["sent", "tracking_buffer"]  # fixtures

BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def variants(token: str) -> set[str]:
    """The token, and what a mail client, a forger or a careless copy makes of it."""
    found = {token, token.upper(), token[:-1], token[:-2], token + "a", token + "=", ""}
    found |= {token + "=" * n for n in (1, 3, 4, 6)}
    for i in (0, len(token) // 2, len(token) - 1):
        found |= {token[:i] + c + token[i + 1 :] for c in BASE32 + "01=!"}
    return found


def test_the_layer_in_front_reads_every_open_token_as_the_views_do():
    for delivery_id in (1, 7, 2**31 + 5, 2**64 - 1):
        for token in variants(open_token(delivery_id)):
            assert tracking_wsgi.open_delivery(token) == tracking.open_delivery(token), token


def test_the_layer_in_front_reads_every_click_token_as_the_views_do():
    verified = 0
    for delivery_id, position in ((1, 0), (99, 3), (2**40, 65535)):
        for token in variants(click_token(delivery_id, position)):
            found = tracking_wsgi.click_target(token)
            assert found == tracking.click_target(token), token
            verified += found is not None
    # Only the tokens as mailed (any case) verify: base32's spare bits changed do not.
    assert verified == 6


def test_a_tampered_token_is_a_plain_404_in_front_of_django(client: Client, sent: Sent):
    client.get(link(sent.ann, 0), **PERSON)  # the link is known in front of Django now
    tracking.buffer_client().delete(tracking.buffer_key())
    token, click = open_token(sent.ann.pk), click_token(sent.bo.pk, 0)
    # A click token's last letter carries 4 bits past its 22 bytes; set one of them.
    spare_bit_set = click[:-1] + BASE32[BASE32.index(click[-1]) | 1]
    for path in (f"/o/{token}=.gif", f"/c/{spare_bit_set}", f"/c/{click}====", "/c/x"):
        status, headers, _ = wsgi_get(wsgi.application, path)
        assert status == "404 Not Found" and "Location" not in headers, path
    assert tracking.buffer_length() == 0


def test_the_production_application_answers_a_hit_in_front_of_django(sent: Sent):
    status, _, body = wsgi_get(wsgi.application, pixel(sent.ann))

    assert (status, body) == ("200 OK", tracking.GIF)
    assert flush().inserted == 1
    assert wsgi.application.__name__ == "forwarded"  # outermost: the proxy's scheme


def buffered_ip() -> str:
    (raw,) = tracking.buffer_client().lrange(tracking.buffer_key(), 0, -1)
    return str(json.loads(raw)["ip"])


def get_through_proxy(path: str, forwarded_for: str, remote: str = "127.0.0.1") -> str:
    environ_extra = {"HTTP_X_FORWARDED_FOR": forwarded_for, "REMOTE_ADDR": remote}
    app = tracking_wsgi.with_tracking(Inner())
    return wsgi_get(lambda e, s: app({**e, **environ_extra}, s), path)[0]


def test_without_trusted_proxies_the_peer_is_the_client(sent: Sent, settings):
    settings.TRUSTED_PROXIES = []

    assert get_through_proxy(pixel(sent.ann), "198.51.100.7", remote="203.0.113.9") == "200 OK"
    assert buffered_ip() == "203.0.113.9"  # what the client claimed is not believed


def test_behind_a_trusted_proxy_the_forwarded_client_is_recorded(sent: Sent, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]

    assert get_through_proxy(pixel(sent.ann), "10.0.0.1, 198.51.100.7") == "200 OK"
    assert buffered_ip() == "198.51.100.7"  # the right-most address that is not our proxy


HSTS_SETTINGS = {
    "SECURE_HSTS_SECONDS": 3600,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SECURE_SSL_REDIRECT": False,
}


@pytest.mark.parametrize(
    ("proto", "remote", "hsts"),
    [("https", "127.0.0.1", True), ("http", "127.0.0.1", False), ("https", "203.0.113.9", False)],
)
def test_in_front_of_django_the_security_headers_are_djangos(
    client: Client, sent: Sent, settings, proto: str, remote: str, hsts: bool
):
    for name, value in HSTS_SETTINGS.items():
        setattr(settings, name, value)
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # not 203.0.113.9: its header is not believed
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    extra = {"HTTP_X_FORWARDED_PROTO": proto, "REMOTE_ADDR": remote}
    client.get(link(sent.ann, 0), **PERSON)  # Django's view looks the link up once
    django = client.get(link(sent.bo, 0), **{**PERSON, **extra})

    app = tracking_wsgi.with_tracking(Inner())
    status, front, _ = wsgi_get(lambda e, s: app({**e, **extra}, s), link(sent.bo, 0))

    assert status == "302 Found"
    for header in ("Strict-Transport-Security", "Referrer-Policy", "Cache-Control", "Location"):
        assert front.get(header) == django.headers.get(header), header
    assert ("Strict-Transport-Security" in front) is hsts


def scheme_seen(allowed: str, remote: str, proto: str | None) -> str:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["scheme"] = environ["wsgi.url_scheme"]
        start_response("200 OK", [])
        return [b""]

    forwarded = wsgi.with_forwarded_scheme(app, wsgi.forwarded_allow(allowed))
    extra = {"REMOTE_ADDR": remote, **({"HTTP_X_FORWARDED_PROTO": proto} if proto else {})}
    wsgi_get(lambda e, s: forwarded({**e, **extra}, s), "/healthz")
    return str(seen["scheme"])


def test_the_scheme_a_proxy_reports_is_believed_only_from_allowed_peers():
    assert scheme_seen("127.0.0.1", "127.0.0.1", "https") == "https"
    assert scheme_seen("127.0.0.1", "127.0.0.1", "HTTPS") == "https"
    assert scheme_seen("127.0.0.1", "203.0.113.9", "https") == "http"  # anyone else: no
    assert scheme_seen("127.0.0.1", "127.0.0.1", None) == "http"
    assert scheme_seen("10.0.0.2, 10.0.0.3", "10.0.0.3", "https") == "https"
    assert scheme_seen("*", "203.0.113.9", "https") == "https"
    assert scheme_seen("", "127.0.0.1", "https") == "http"  # none allowed
