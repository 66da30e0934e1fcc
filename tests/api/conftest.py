"""A signing API client that sends requests the way each Heyloyalty client does."""

from __future__ import annotations

import json
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.test.client import encode_multipart
from django.utils import timezone

from accounts.services import apikey_create
from heyloyalty.api.signature import sign
from members import services
from members.fields import FieldSpec
from tests.conftest import Personas

BOUNDARY = "------------------------hlboundary"


def rfc1123(now: Any = None) -> str:
    return formatdate((now or timezone.now()).timestamp(), usegmt=True)


def php_query(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """PHP's http_build_query: nested keys become a[b][c], lists a[0], a[1]."""
    pairs: list[tuple[str, str]] = []
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict | list):
            pairs.extend(php_query(value, name))  # type: ignore[arg-type]
        else:
            pairs.append((name, "" if value is None else str(value)))
    return pairs


class Api:
    def __init__(self, key: str, secret: str) -> None:
        self.key, self.secret = key, secret
        self.client = Client()

    def headers(self, timestamp: str | None = None) -> dict[str, str]:
        signed = sign(self.key, self.secret, timestamp or rfc1123())
        return {
            "HTTP_AUTHORIZATION": signed["Authorization"],
            "HTTP_X_REQUEST_TIMESTAMP": signed["X-Request-Timestamp"],
        }

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict | None = None,
        body: bytes = b"",
        content_type: str = "",
        timestamp: str | None = None,
        **extra: Any,
    ):
        url = f"/loyalty/v1/{path}" if not path.startswith("/") else path
        if query:
            url += "?" + urlencode(php_query(query))
        headers = {**self.headers(timestamp), **extra}
        if content_type:
            headers["CONTENT_TYPE"] = content_type
        return self.client.generic(method, url, data=body, **headers)

    # The encodings real clients use (heyloyalty-api.md §3.1)
    def form(self, method: str, path: str, data: dict, **kw: Any):
        return self.call(
            method,
            path,
            body=urlencode(php_query(data)).encode(),
            content_type="application/x-www-form-urlencoded",
            **kw,
        )

    def multipart(self, method: str, path: str, data: dict, **kw: Any):
        body = encode_multipart(BOUNDARY, dict(php_query(data)))
        return self.call(
            method, path, body=body, content_type=f"multipart/form-data; boundary={BOUNDARY}", **kw
        )

    def json(self, method: str, path: str, data: Any, **kw: Any):
        return self.call(
            method, path, body=json.dumps(data).encode(), content_type="application/json", **kw
        )

    def get(self, path: str, query: dict | None = None, **kw: Any):
        return self.call("GET", path, query=query, **kw)


@pytest.fixture
def alice_api(personas: Personas) -> Api:
    api_key, secret = apikey_create(account=personas.account_a, name="shop")
    return Api(api_key.key, secret)


@pytest.fixture
def carol_api(personas: Personas) -> Api:
    api_key, secret = apikey_create(account=personas.account_b, name="carol")
    return Api(api_key.key, secret)


@pytest.fixture
def shop_list(personas: Personas):
    """Alice's list with custom fields of every format."""
    return services.list_create(
        account=personas.account_a,
        name="Customers",
        fields=[
            FieldSpec("interests", "multi", "Interests", options=["Music", "Books", "Film"]),
            FieldSpec("newsletter", "boolean", "Newsletter"),
            FieldSpec("points", "number", "Points"),
            FieldSpec("lastlogin", "date", "Last login"),
            FieldSpec("shoe", "choice", "Shoe size", options=["40", "41", "42"]),
        ],
    )
