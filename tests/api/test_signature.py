"""Request signatures as Heyloyalty clients build them (spec §2), checked without a database."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from heyloyalty.api import signature
from heyloyalty.api.signature import (
    SignatureError,
    expected_signature,
    parse_basic,
    parse_timestamp,
    sign,
    verify,
)

KEY = "API_KEY"
SECRET = "API_SECRET"
T_RFC = "Fri, 24 May 2013 13:16:26 GMT"
T_GLUED = "Fri, 24 May 2013 13:16:26GMT"
T_ISO = "2015-05-20T10:11:12.345Z"
AT_RFC = datetime(2013, 5, 24, 13, 16, 26, tzinfo=UTC)
AT_ISO = datetime(2015, 5, 20, 10, 11, 12, 345000, tzinfo=UTC)
WINDOW = timedelta(minutes=15)

VECTOR_HEX = "280a3153669034f134552edd93d35a6d68fe4ac3c0785dd72e4c7b4df82b6272"
VECTOR_P = (
    "MjgwYTMxNTM2NjkwMzRmMTM0NTUyZWRkOTNkMzVhNmQ2OGZlNGFjM2MwNzg1ZGQ3MmU0YzdiNGRmODJiNjI3Mg=="
)
VECTOR_HEADER = (
    "Basic QVBJX0tFWTpNamd3WVRNeE5UTTJOamt3TXpSbU1UTTBOVFV5WldSa09UTmtNelZoTm1RMk9HWmxOR0Zq"
    "TTJNd056ZzFaR1EzTW1VMFl6ZGlOR1JtT0RKaU5qSTNNZz09"
)


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def basic(api_key: str, password: str) -> str:
    return "Basic " + b64(f"{api_key}:{password}")


def lookup(key: str) -> str | None:
    return {KEY: SECRET}.get(key)


def check(
    authorization: str | None,
    timestamp: str | None = T_RFC,
    *,
    now: datetime = AT_RFC,
    secret_for_key: Callable[[str], str | None] = lookup,
) -> str:
    return verify(
        authorization=authorization,
        timestamp=timestamp,
        secret_for_key=secret_for_key,
        now=now,
        window=WINDOW,
    )


def reason_of(authorization: str | None, timestamp: str | None = T_RFC, **kw) -> str:
    with pytest.raises(SignatureError) as caught:
        check(authorization, timestamp, **kw)
    return caught.value.reason


# --- §2.1 test vector -------------------------------------------------------------------


def test_the_hex_hmac_of_the_spec_vector_is_lowercase_and_matches():
    assert expected_signature(SECRET, T_RFC) == VECTOR_HEX


def test_the_password_part_is_base64_of_the_hex_string_not_of_the_raw_digest():
    _, password = parse_basic(sign(KEY, SECRET, T_RFC)["Authorization"])
    assert password == VECTOR_P
    assert len(password) == 88


def test_sign_builds_the_exact_headers_of_the_spec_vector():
    assert sign(KEY, SECRET, T_RFC) == {
        "Authorization": VECTOR_HEADER,
        "X-Request-Timestamp": T_RFC,
    }


def test_the_spec_vector_header_verifies_and_yields_the_api_key():
    assert check(VECTOR_HEADER, T_RFC) == KEY


# --- round trips for every timestamp format clients send (§2.2) ---------------------------


@pytest.mark.parametrize(
    ("timestamp", "sent_at"),
    [(T_RFC, AT_RFC), (T_GLUED, AT_RFC), (T_ISO, AT_ISO)],
    ids=["rfc1123", "rfc1123-glued-gmt", "iso-milliseconds"],
)
def test_a_signed_request_verifies_in_every_client_timestamp_format(timestamp, sent_at):
    headers = sign(KEY, SECRET, timestamp)
    assert check(headers["Authorization"], headers["X-Request-Timestamp"], now=sent_at) == KEY


def test_the_signature_covers_the_raw_header_not_the_parsed_instant():
    # Same instant, different spelling: the HMAC must be over the exact string sent.
    headers = sign(KEY, SECRET, T_RFC)
    assert reason_of(headers["Authorization"], "Fri, 24 May 2013 13:16:26 +0000") == (
        "bad_signature"
    )


def test_the_same_signed_pair_is_accepted_again_because_there_is_no_replay_check():
    headers = sign(KEY, SECRET, T_RFC)
    for _ in range(3):
        assert check(headers["Authorization"], T_RFC) == KEY


# --- clock window -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [AT_RFC + WINDOW + timedelta(seconds=1), AT_RFC - WINDOW - timedelta(seconds=1)],
    ids=["timestamp-too-old", "timestamp-too-far-in-the-future"],
)
def test_a_timestamp_outside_the_window_on_either_side_is_stale(now):
    assert reason_of(sign(KEY, SECRET, T_RFC)["Authorization"], now=now) == "stale_timestamp"


@pytest.mark.parametrize(
    "now",
    [
        AT_RFC + WINDOW - timedelta(seconds=1),
        AT_RFC - WINDOW + timedelta(seconds=1),
        AT_RFC + WINDOW,
        AT_RFC - WINDOW,
    ],
    ids=["one-second-inside-past", "one-second-inside-future", "edge-past", "edge-future"],
)
def test_a_timestamp_inside_the_window_on_either_side_passes(now):
    assert check(sign(KEY, SECRET, T_RFC)["Authorization"], now=now) == KEY


def test_a_correctly_signed_but_unparseable_timestamp_is_a_bad_timestamp():
    headers = sign(KEY, SECRET, "yesterday-ish")
    assert reason_of(headers["Authorization"], "yesterday-ish") == "bad_timestamp"


def test_a_naive_now_is_a_programming_error_not_an_auth_failure():
    with pytest.raises(ValueError, match="aware"):
        check(VECTOR_HEADER, now=AT_RFC.replace(tzinfo=None))


# --- signature and key failures -----------------------------------------------------------


def test_a_request_signed_with_the_wrong_secret_is_a_bad_signature():
    assert reason_of(sign(KEY, "not-the-secret", T_RFC)["Authorization"]) == "bad_signature"


def test_an_unknown_key_is_rejected():
    assert reason_of(sign("NO_SUCH_KEY", SECRET, T_RFC)["Authorization"]) == "unknown_key"


def test_an_empty_secret_counts_as_an_unknown_key():
    headers = sign(KEY, "", T_RFC)
    assert reason_of(headers["Authorization"], secret_for_key=lambda _k: "") == "unknown_key"


def test_an_unknown_key_still_computes_an_hmac_so_timing_does_not_reveal_keys(monkeypatch):
    calls: list[str] = []
    real = signature._digest

    def spy(secret: str, timestamp: str) -> bytes:
        calls.append(secret)
        return real(secret, timestamp)

    authorization = sign("NO_SUCH_KEY", SECRET, T_RFC)["Authorization"]
    monkeypatch.setattr(signature, "_digest", spy)
    assert reason_of(authorization) == "unknown_key"
    assert len(calls) == 1
    assert calls[0] not in ("", SECRET)


@pytest.mark.parametrize(
    "authorization", [sign("NO_SUCH_KEY", SECRET, T_RFC)["Authorization"], basic(KEY, "x")]
)
def test_verify_asks_for_the_secret_exactly_once(authorization):
    asked: list[str] = []

    def counting(key: str) -> str | None:
        asked.append(key)
        return lookup(key)

    with pytest.raises(SignatureError):
        check(authorization, secret_for_key=counting)
    assert len(asked) == 1


def test_verify_asks_for_the_secret_exactly_once_on_success():
    asked: list[str] = []

    def counting(key: str) -> str | None:
        asked.append(key)
        return lookup(key)

    assert check(VECTOR_HEADER, secret_for_key=counting) == KEY
    assert asked == [KEY]


def test_a_password_that_is_not_base64_is_a_bad_signature():
    assert reason_of(basic(KEY, "!!not base64!!")) == "bad_signature"


# --- tolerated variants of P --------------------------------------------------------------


def test_p_as_base64_of_the_raw_32_byte_digest_is_accepted():
    raw = hmac.new(SECRET.encode(), T_RFC.encode(), hashlib.sha256).digest()
    assert check(basic(KEY, b64(raw))) == KEY


def test_uppercase_hex_in_p_is_accepted():
    assert check(basic(KEY, b64(VECTOR_HEX.upper()))) == KEY


def test_p_without_base64_padding_is_accepted():
    assert check(basic(KEY, VECTOR_P.rstrip("="))) == KEY


# --- the Authorization header -------------------------------------------------------------


def test_the_basic_scheme_is_case_insensitive_and_surrounding_whitespace_is_ignored():
    header = "  bAsIc   " + VECTOR_HEADER.split()[1] + "  "
    assert parse_basic(header) == (KEY, VECTOR_P)
    assert check(header) == KEY


def test_credentials_without_base64_padding_are_accepted():
    header = "Basic " + b64(f"{KEY}:xy")
    assert header.endswith("==")
    assert parse_basic(header.rstrip("=")) == (KEY, "xy")


def test_the_credentials_split_at_the_first_colon_only():
    assert parse_basic(basic(KEY, "pa:ss:word")) == (KEY, "pa:ss:word")


def test_a_password_containing_a_colon_fails_as_a_bad_signature_not_as_malformed():
    assert reason_of(basic(KEY, VECTOR_P[:10] + ":" + VECTOR_P[10:])) == "bad_signature"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer " + b64(f"{KEY}:{VECTOR_P}"), "Digest username=API_KEY", b64(f"{KEY}:{VECTOR_P}")],
    ids=["bearer", "digest", "no-scheme"],
)
def test_a_non_basic_scheme_is_rejected(authorization):
    assert reason_of(authorization) == "not_basic"


@pytest.mark.parametrize(
    "authorization",
    ["Basic", "Basic !!!!", "Basic QUJD*", "Basic " + b64(b"\xff\xfe:x"), "Basic A"],
    ids=["no-credentials", "bad-alphabet", "stray-char", "not-utf8", "impossible-length"],
)
def test_credentials_that_are_not_valid_base64_text_are_malformed(authorization):
    assert reason_of(authorization) == "malformed"


def test_credentials_without_a_colon_are_malformed():
    assert reason_of("Basic " + b64(KEY + VECTOR_P)) == "malformed"


def test_credentials_with_an_empty_key_are_malformed():
    assert reason_of(basic("", VECTOR_P)) == "malformed"


# --- missing headers ----------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "   "])
def test_a_missing_authorization_header_is_rejected(authorization):
    assert reason_of(authorization) == "missing_authorization"


@pytest.mark.parametrize("timestamp", [None, "", "  "])
def test_a_missing_timestamp_header_is_rejected(timestamp):
    assert reason_of(VECTOR_HEADER, timestamp) == "missing_timestamp"


def test_the_reason_is_also_the_exception_message_for_logs():
    with pytest.raises(SignatureError, match=r"^unknown_key$"):
        check(basic("NO_SUCH_KEY", VECTOR_P))


# --- parse_timestamp ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (T_RFC, AT_RFC),
        (T_GLUED, AT_RFC),
        ("Fri, 24 May 2013 13:16:26gmt", AT_RFC),
        (T_ISO, AT_ISO),
        ("2015-05-20T10:11:12.345z", AT_ISO),
        ("2015-05-20 10:11:12.345Z", AT_ISO),
        ("2015-05-20T10:11:12.345+00:00", AT_ISO),
        ("2015-05-20T12:11:12.345+02:00", AT_ISO),
        ("Fri, 24 May 2013 15:16:26 +0200", AT_RFC),
        ("Fri, 24 May 2013 13:16:26 -0000", AT_RFC),
        ("2015-05-20T10:11:12.345", AT_ISO),
        (" " + T_RFC + " ", AT_RFC),
    ],
)
def test_parse_timestamp_returns_the_instant_in_utc(raw, expected):
    parsed = parse_timestamp(raw)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    ["", "garbage", "Fri, 31 Feb 2013 13:16:26 GMT", "2015-05-20", "2015-13-20T10:11:12Z", "1"],
)
def test_parse_timestamp_rejects_anything_else_as_a_bad_timestamp(raw):
    with pytest.raises(SignatureError) as caught:
        parse_timestamp(raw)
    assert caught.value.reason == "bad_timestamp"
