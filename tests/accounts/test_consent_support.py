"""What the consent and sign-in-as tests share: Oscar (the account manager of account B,
which asks first), clients, the mail with its links, and the audit events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AccessRequest, User
from audit.models import AuditEvent
from heyloyalty.celery import app
from tests.conftest import Personas


def oscar() -> User:
    return User.objects.get(email="oscar@heyloyalty.test")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def request_url(account_id: int) -> str:
    return reverse("admin:accounts_account_request_access", args=[account_id])


def carol_user_page(personas: Personas) -> str:
    """An admin page with data of account B: Carol's user page."""
    return reverse("admin:accounts_user_change", args=[personas.carol.pk])


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks queued after commit run at once, in this process (Celery's eager mode)."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def ask(client: Client, account_id: int, reason: str, capture) -> AccessRequest:
    """Ask in the admin panel as the client's manager; the mail goes out after commit."""
    with capture(execute=True) as callbacks:
        response = client.post(request_url(account_id), {"reason": reason})
    assert response.status_code == 302, response.content
    assert len(callbacks) == 1  # the mail is queued after commit, not sent inside it
    return AccessRequest.objects.latest("created_at")


def text_of(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def html_of(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def links_in(message: Message) -> dict[str, str]:
    """The approve and deny links of a mail, as paths on this site."""
    paths = [urlsplit(u).path for u in re.findall(r"https?://\S+/access/\S+/", text_of(message))]
    assert len(paths) == 2, text_of(message)
    return {"approve": paths[0], "deny": paths[1]}


def events(action: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("seq"))


def last_event(**filters) -> AuditEvent:
    return AuditEvent.objects.filter(**filters).order_by("-seq")[0]
