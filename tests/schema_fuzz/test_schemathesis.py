"""Schemathesis against /api/schema/ (issue 8): every API operation, called with data that
hypothesis generates from the schema and signed like a real client, answers no 5xx and
exactly as the schema says (status code, content type, body).

The schema is the one /api/schema/ serves (checked below), built at collection time
without a request; the calls go through the whole WSGI application."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.utils import formatdate

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import apikey_create
from heyloyalty.api.signature import sign
from members import services as members

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SPEC = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(None, public=True)))
schema = schemathesis.openapi.from_dict(SPEC)
schema.app = get_wsgi_application()


@pytest.fixture
def wsgi_in_test_transaction(settings) -> Iterator[None]:
    """Like Django's test client, requests keep the test's connection (its transaction)."""
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def credentials(personas, wsgi_in_test_transaction) -> tuple[str, str]:
    """Alice's key, her list with a member: generated ids sometimes hit real rows."""
    members_list = members.list_create(account=personas.account_a, name="Fuzz")
    members.member_create(member_list=members_list, values={"email": "fuzz@a.test"})
    key, secret = apikey_create(account=personas.account_a, name="schemathesis")
    return key.key, secret


@pytest.mark.django_db
def test_the_schema_tested_is_the_one_served(client: Client):
    served = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert json.loads(served.content) == SPEC


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_the_schema_says(case, credentials):
    key, secret = credentials
    signed = sign(key, secret, formatdate(usegmt=True))
    case.call_and_validate(
        headers={
            "Authorization": signed["Authorization"],
            "X-Request-Timestamp": signed["X-Request-Timestamp"],
        },
        checks=CHECKS,
    )
