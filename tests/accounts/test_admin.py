import re

from django.test import Client
from django.urls import reverse

from accounts.models import Account, User
from tests.conftest import Personas


def staff_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_manager_lists_only_the_accounts_assigned_to_them(personas: Personas):
    page = staff_client(personas.mallory).get(reverse("admin:accounts_account_changelist"))
    assert page.status_code == 200
    assert "Account A Bakery" in page.text
    assert "Account B Bikes" not in page.text


def test_a_direct_url_to_another_managers_account_shows_no_data(personas: Personas):
    client = staff_client(personas.mallory)
    url = reverse("admin:accounts_account_change", args=[personas.account_b.pk])
    response = client.get(url, follow=True)
    assert "Account B Bikes" not in response.text
    assert "carol@b.test" not in response.text
    for name in ("history", "delete"):
        other = client.get(
            reverse(f"admin:accounts_account_{name}", args=[personas.account_b.pk]), follow=True
        )
        assert "Account B Bikes" not in other.text


def test_a_manager_sees_only_users_of_their_accounts(personas: Personas):
    client = staff_client(personas.mallory)
    page = client.get(reverse("admin:accounts_user_changelist"))
    assert "alice@a.test" in page.text
    assert "bob@a.test" in page.text
    assert "carol@b.test" not in page.text
    assert "root@heyloyalty.test" not in page.text
    carol = client.get(reverse("admin:accounts_user_change", args=[personas.carol.pk]), follow=True)
    assert "carol@b.test" not in carol.text


def test_a_manager_cannot_set_a_password_outside_their_accounts(personas: Personas):
    client = staff_client(personas.mallory)
    url = reverse("admin:accounts_user_password", args=[personas.carol.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"generate": "on"}).status_code == 404
    personas.carol.refresh_from_db()
    assert personas.carol.check_password(personas.password)


def test_a_main_admin_sees_every_account(personas: Personas):
    page = staff_client(personas.root).get(reverse("admin:accounts_account_changelist"))
    assert "Account A Bakery" in page.text
    assert "Account B Bikes" in page.text


def test_customers_cannot_enter_the_admin_panel(personas: Personas):
    response = staff_client(personas.alice).get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_generated_password_is_shown_once_and_must_be_changed(personas: Personas):
    client = staff_client(personas.mallory)
    url = reverse("admin:accounts_user_password", args=[personas.bob.pk])
    response = client.post(url, {"generate": "on"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = re.search(r'id="new-password" type="text" readonly value="([^"]+)"', response.text)
    assert shown
    # The field selects itself for copying with a script the CSP lets run (the page's nonce).
    nonce = re.search(r'<script nonce="([^"]+)">', response.text)
    assert nonce and f"'nonce-{nonce.group(1)}'" in response["Content-Security-Policy"]
    personas.bob.refresh_from_db()
    assert personas.bob.check_password(shown.group(1))
    assert personas.bob.must_change_password
    # Not shown again: the change page carries no password.
    change = client.get(reverse("admin:accounts_user_change", args=[personas.bob.pk]))
    assert shown.group(1) not in change.text


def test_a_typed_password_must_pass_the_validators(personas: Personas):
    client = staff_client(personas.mallory)
    url = reverse("admin:accounts_user_password", args=[personas.bob.pk])
    response = client.post(url, {"password": "short"})
    assert response.status_code == 200
    assert "too short" in response.text
    personas.bob.refresh_from_db()
    assert not personas.bob.must_change_password


def test_a_manager_adds_a_user_to_their_account_with_a_generated_password(personas: Personas):
    client = staff_client(personas.mallory)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "Dora@A.test",
            "name": "Dora",
            "role": "user",
            "account": personas.account_a.pk,
            "generate": "on",
        },
    )
    assert response.status_code == 200, response.text
    dora = User.objects.get(email="dora@a.test")
    shown = re.search(r'readonly value="([^"]+)"', response.text)
    assert shown and dora.check_password(shown.group(1))
    assert dora.must_change_password
    assert dora.password.startswith("argon2$argon2id$")


def test_a_manager_cannot_add_users_to_other_accounts_or_create_staff(personas: Personas):
    client = staff_client(personas.mallory)
    to_b = client.post(
        reverse("admin:accounts_user_add"),
        {"email": "eve@b.test", "role": "user", "account": personas.account_b.pk, "generate": "on"},
    )
    assert to_b.status_code == 200
    assert "Select a valid choice" in to_b.text
    staff = client.post(
        reverse("admin:accounts_user_add"),
        {"email": "eve@heyloyalty.test", "role": "admin", "generate": "on"},
    )
    assert "Select a valid choice" in staff.text
    assert not User.objects.filter(email__startswith="eve@").exists()


def test_a_manager_creates_an_account_that_is_assigned_to_them(personas: Personas):
    client = staff_client(personas.mallory)
    response = client.post(
        reverse("admin:accounts_account_add"),
        {
            "name": "Account C Cafe",
            "manager_access": "ask",
            "timezone": "Europe/Copenhagen",
            "default_from_name": "",
            "default_from_email": "",
        },
    )
    assert response.status_code == 302, response.text
    assert Account.objects.get(name="Account C Cafe").manager == personas.mallory


def test_a_bad_time_zone_is_a_form_error(personas: Personas):
    client = staff_client(personas.root)
    response = client.post(
        reverse("admin:accounts_account_add"),
        {"name": "Bad TZ", "manager_access": "ask", "timezone": "Mars/Olympus"},
    )
    assert response.status_code == 200
    assert "is not a known time zone" in response.text


def test_staff_change_their_own_password_through_the_same_service(personas: Personas):
    from accounts import services

    services.user_set_password(
        user=personas.mallory, password="set-by-root-for-mallory", set_by=personas.root
    )
    client = staff_client(personas.mallory)
    assert client.get(reverse("admin:index"))["Location"] == reverse("accounts:password_change")
    redirect = client.get("/admin/password_change/")
    assert redirect["Location"] == reverse("accounts:password_change")
    client.post(
        reverse("accounts:password_change"),
        {
            "old_password": "set-by-root-for-mallory",
            "new_password1": "mallorys-own-choice-5",
            "new_password2": "mallorys-own-choice-5",
        },
    )
    personas.mallory.refresh_from_db()
    assert not personas.mallory.must_change_password
    assert client.get(reverse("admin:index")).status_code == 200
