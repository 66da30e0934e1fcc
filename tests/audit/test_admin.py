"""The audit log in the admin panel: read by main admins, changed by nobody."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from audit.services import record
from tests.conftest import Personas


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_main_admin_reads_the_log_but_cannot_add_change_or_delete(personas: Personas):
    event = record("test.visible", target_repr="Something to find")
    client = signed_in(personas.root)
    listing = client.get(reverse("admin:audit_auditevent_changelist"))
    assert listing.status_code == 200
    assert "Something to find" in listing.text
    detail = client.get(reverse("admin:audit_auditevent_change", args=[event.seq]))
    assert detail.status_code == 200
    assert event.hash in detail.text
    assert 'name="_save"' not in detail.text  # read-only: nothing to save
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert (
        client.post(reverse("admin:audit_auditevent_change", args=[event.seq]), {}).status_code
        == 403
    )
    assert client.get(reverse("admin:audit_auditevent_delete", args=[event.seq])).status_code == 403
    event.refresh_from_db()
    assert event.action == "test.visible"


def test_an_account_manager_does_not_see_the_log(personas: Personas):
    client = signed_in(personas.mallory)
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 403
    assert "/admin/audit/" not in client.get(reverse("admin:index")).text
