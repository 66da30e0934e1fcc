import logging
import subprocess

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import Role, User
from heyloyalty.dev.embedded import pg_binary
from tests.conftest import Personas


@pytest.mark.real_hashing
def test_production_hashing_is_argon2id_with_strong_parameters(db):
    user = services.user_create(
        email="real@heyloyalty.test", role=Role.ADMIN, password="a-real-strong-passphrase"
    )
    algorithm, variant, _version, params, *_ = user.password.split("$")
    assert (algorithm, variant) == ("argon2", "argon2id")
    cost = dict(p.split("=") for p in params.split(","))
    assert int(cost["m"]) >= 19 * 1024  # OWASP's floor for argon2id memory (KiB)
    assert int(cost["t"]) >= 2


def test_every_stored_hash_is_argon2id(personas: Personas):
    hashes = list(User.objects.values_list("password", flat=True))
    assert len(hashes) == 6
    assert all(h.startswith("argon2$argon2id$") for h in hashes), hashes


@pytest.mark.django_db(transaction=True)
def test_a_database_dump_holds_no_password_in_plain_text(live_personas: Personas):
    generated = services.password_generate()
    services.user_set_password(
        user=live_personas.bob, password=generated, set_by=live_personas.mallory
    )
    db = connection.settings_dict
    dump = subprocess.run(
        [
            str(pg_binary("pg_dump")),
            "--data-only",
            "-h",
            db["HOST"],
            "-p",
            str(db["PORT"]),
            "-U",
            db["USER"],
            db["NAME"],
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PGPASSWORD": db.get("PASSWORD") or ""},
    )
    assert "alice@a.test" in dump.stdout  # the dump is real and has the users in it
    assert "argon2$argon2id$" in dump.stdout
    assert live_personas.password not in dump.stdout
    assert generated not in dump.stdout


def test_weak_passwords_are_refused(personas: Personas):
    from django.core.exceptions import ValidationError

    for weak in ["short", "password1234", "123456789012", "alice@a.test1"]:
        with pytest.raises(ValidationError):
            services.user_set_password(user=personas.alice, password=weak, set_by=personas.alice)


def test_a_password_set_by_a_manager_must_be_changed_at_next_sign_in(personas: Personas):
    services.user_set_password(
        user=personas.bob, password="given-by-mallory-42", set_by=personas.mallory
    )
    client = Client()
    signed_in = client.post(
        reverse("accounts:login"), {"username": "bob@a.test", "password": "given-by-mallory-42"}
    )
    assert signed_in.status_code == 302
    home = client.get(reverse("accounts:home"))
    assert home.status_code == 302
    assert home["Location"] == reverse("accounts:password_change")
    page = client.get(reverse("accounts:password_change"))
    assert "Your password was set by your account manager" in page.text

    changed = client.post(
        reverse("accounts:password_change"),
        {
            "old_password": "given-by-mallory-42",
            "new_password1": "only-bob-knows-this-1",
            "new_password2": "only-bob-knows-this-1",
        },
    )
    assert changed.status_code == 302
    assert client.get(reverse("accounts:home")).status_code == 200
    personas.bob.refresh_from_db()
    assert not personas.bob.must_change_password
    assert personas.bob.check_password("only-bob-knows-this-1")


def test_a_weak_new_password_gets_a_form_error(client: Client, personas: Personas):
    client.force_login(personas.alice)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": personas.password, "new_password1": "abc", "new_password2": "abc"},
    )
    assert response.status_code == 200
    assert "This password is too short" in response.text
    personas.alice.refresh_from_db()
    assert personas.alice.check_password(personas.password)


def test_users_change_their_own_password_and_stay_signed_in(client: Client, personas: Personas):
    client.force_login(personas.alice)
    response = client.post(
        reverse("accounts:password_change"),
        {
            "old_password": personas.password,
            "new_password1": "alices-new-secret-77",
            "new_password2": "alices-new-secret-77",
        },
        follow=True,
    )
    assert "Your password has been changed" in response.text
    assert client.get(reverse("accounts:home")).status_code == 200


def test_a_generated_password_is_long_and_random():
    first, second = services.password_generate(), services.password_generate()
    assert first != second
    assert len(first) >= 20


def test_a_password_never_reaches_the_logs(client: Client, personas: Personas, caplog):
    caplog.set_level(logging.DEBUG)
    client.force_login(personas.mallory)
    url = reverse("admin:accounts_user_password", args=[personas.bob.pk])
    client.post(url, {"password": "typed-by-mallory-99"})
    client.post(
        reverse("accounts:login"), {"username": "bob@a.test", "password": "wrong-and-secret-1"}
    )
    for record in caplog.records:
        assert "typed-by-mallory-99" not in record.getMessage()
        assert "wrong-and-secret-1" not in record.getMessage()


def test_user_create_refuses_a_customer_without_an_account(db):
    with pytest.raises(ValueError):
        services.user_create(email="x@y.test", role=Role.OWNER, password="long-enough-pass-1")
