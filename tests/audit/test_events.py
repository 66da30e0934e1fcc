"""The events written by the services and signals: sign-ins, passwords, API keys,
consent changes, exports. None of them holds a password or a secret."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from accounts.services import apikey_create, apikey_revoke, user_set_password
from audit.models import AuditEvent
from members import services as members
from tests.conftest import Personas

LOGIN = reverse("accounts:login")
NEW_PASSWORD = "a-completely-new-passphrase-9"


def _head() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _after(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def _no_secret_in(events: list[AuditEvent], *secrets: str) -> None:
    for event in events:
        text = " ".join(str(v) for v in event.__dict__.values())
        for secret in secrets:
            assert secret not in text, event.action


def test_sign_in_sign_out_and_a_failed_sign_in_are_logged(client: Client, personas: Personas):
    before = _head()
    client.post(
        LOGIN,
        {"username": "alice@a.test", "password": "wrong-password-1"},
        REMOTE_ADDR="198.51.100.7",
        HTTP_USER_AGENT="Test browser",
    )
    client.post(LOGIN, {"username": "nobody@a.test", "password": "x"}, REMOTE_ADDR="198.51.100.7")
    client.post(
        LOGIN,
        {"username": "Alice@A.test", "password": personas.password},
        REMOTE_ADDR="198.51.100.7",
    )
    client.post(reverse("accounts:logout"), REMOTE_ADDR="198.51.100.7")
    events = _after(before)
    assert [e.action for e in events] == [
        "auth.sign_in_failed",
        "auth.sign_in_failed",
        "auth.sign_in",
        "auth.sign_out",
    ]
    failed, unknown, signed_in, signed_out = events
    assert (failed.actor_role, failed.target_repr, failed.account_id) == (
        "anonymous",
        "alice@a.test",
        personas.account_a.pk,
    )
    assert (failed.ip, failed.user_agent, failed.path) == ("198.51.100.7", "Test browser", LOGIN)
    assert (unknown.target_repr, unknown.target_id, unknown.account_id) == (
        "nobody@a.test",
        "",
        None,
    )
    assert (signed_in.actor_email, signed_in.actor_role) == ("alice@a.test", "owner")
    assert signed_out.actor_email == "alice@a.test"
    _no_secret_in(events, "wrong-password-1", personas.password)


def test_a_locked_out_attempt_is_logged_as_failed_too(client: Client, personas: Personas):
    before = _head()
    for attempt in range(6):
        client.post(LOGIN, {"username": "bob@a.test", "password": f"nope-{attempt}"})
    events = _after(before)
    assert [e.action for e in events] == ["auth.sign_in_failed"] * 6


def test_a_password_set_by_the_account_manager_is_logged_without_the_password(
    personas: Personas,
):
    client = Client()
    client.force_login(personas.mallory)
    before = _head()
    response = client.post(
        reverse("admin:accounts_user_password", args=[personas.bob.pk]),
        {"password": NEW_PASSWORD},
    )
    assert response.status_code == 302
    events = _after(before)
    [event] = [e for e in events if e.action == "auth.password_set"]
    assert (event.actor_email, event.account_id, event.target_repr, event.extra) == (
        "mallory@heyloyalty.test",
        personas.account_a.pk,
        "bob@a.test",
        {"by_someone_else": True},
    )
    _no_secret_in(events, NEW_PASSWORD)


def test_a_users_own_new_password_is_logged_too(personas: Personas, db):
    before = _head()
    user_set_password(user=personas.bob, password=NEW_PASSWORD, set_by=personas.bob)
    [event] = _after(before)
    assert (event.action, event.actor_email, event.extra) == (
        "auth.password_set",
        "bob@a.test",
        {"by_someone_else": False},
    )


def test_api_keys_made_and_revoked_are_logged_without_the_secret(personas: Personas):
    before = _head()
    api_key, secret = apikey_create(
        account=personas.account_a, name="Shop", created_by=personas.alice
    )
    apikey_revoke(api_key=api_key, revoked_by=personas.alice)
    apikey_revoke(api_key=api_key, revoked_by=personas.alice)  # already revoked: nothing
    created, revoked = _after(before)
    assert (created.action, created.actor_email, created.account_id) == (
        "apikey.created",
        "alice@a.test",
        personas.account_a.pk,
    )
    assert created.extra == {"key": api_key.key[:8], "scope": "read_write"}
    assert (revoked.action, revoked.target_id) == ("apikey.revoked", str(api_key.pk))
    _no_secret_in([created, revoked], secret, api_key.secret_encrypted)


def test_revoking_a_key_on_the_dashboard_names_who_did_it(personas: Personas):
    api_key, _ = apikey_create(account=personas.account_a, name="Shop")
    client = Client()
    client.force_login(personas.alice)
    before = _head()
    client.post(reverse("accounts:api_key_revoke", args=[api_key.pk]))
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    [event] = _after(before)
    assert (event.action, event.actor_email) == ("apikey.revoked", "alice@a.test")


def test_changing_the_consent_setting_in_the_admin_is_logged(personas: Personas):
    client = Client()
    client.force_login(personas.root)
    before = _head()
    account = personas.account_a
    response = client.post(
        reverse("admin:accounts_account_change", args=[account.pk]),
        {
            "name": account.name,
            "manager": personas.mallory.pk,
            "manager_access": "ask",
            "timezone": account.timezone,
            "default_from_name": "",
            "default_from_email": "",
        },
    )
    assert response.status_code == 302, response.content
    [event] = [e for e in _after(before) if e.action == "consent.setting_changed"]
    assert (event.actor_email, event.account_id, event.extra) == (
        "root@heyloyalty.test",
        account.pk,
        {"field": "manager_access", "from": "allowed", "to": "ask"},
    )


def test_member_exports_are_logged(personas: Personas):
    shop = members.list_create(account=personas.account_a, name="Shop")
    member = members.member_create(member_list=shop, values={"email": "m@example.dk"})
    client = Client()
    client.force_login(personas.alice)
    before = _head()
    csv = client.get(reverse("members:list_export", args=[shop.pk]))
    assert b"m@example.dk" in b"".join(csv.streaming_content)  # type: ignore[attr-defined]
    client.get(reverse("members:member_export", args=[shop.pk, member.pk]))
    events = _after(before)
    assert [(e.action, e.actor_email, e.account_id, e.target_type) for e in events] == [
        ("export.members", "alice@a.test", personas.account_a.pk, "members.list"),
        ("export.members", "alice@a.test", personas.account_a.pk, "members.member"),
    ]
