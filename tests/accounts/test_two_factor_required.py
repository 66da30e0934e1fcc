"""Every request of a session that owes the second factor goes to the code page
(accounts.middleware.TwoFactorRequiredMiddleware): staff signed in with the password
alone (a session from before they became staff, or from before two-factor sign-in was
enforced), and customers who turned it on. Customers who did not are never asked."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import two_factor
from accounts.models import Role, User
from tests.conftest import Personas, password_only_login

pytestmark = pytest.mark.django_db

VERIFY = reverse("two_factor:verify")
SETUP = reverse("two_factor:setup")
LIST_PAGE = reverse("members:lists")


def code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():06d}"


def phone(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def password_only(user: User) -> Client:
    client = Client()
    password_only_login(client, user)
    return client


def sent_to_the_code(answer, next_path: str) -> bool:
    wanted = f"{VERIFY}?{urlencode({'next': next_path})}"
    return answer.status_code == 302 and answer["Location"] == wanted


def test_an_unverified_staff_session_reaches_neither_the_admin_panel_nor_the_dashboard(
    personas: Personas,
):
    phone(personas.root)
    client = password_only(personas.root)

    assert sent_to_the_code(client.get("/admin/"), "/admin/")
    assert sent_to_the_code(client.get("/admin/accounts/user/"), "/admin/accounts/user/")
    assert sent_to_the_code(client.get("/"), "/")
    assert sent_to_the_code(client.get(LIST_PAGE), LIST_PAGE)
    assert sent_to_the_code(client.get("/status/?page=2"), "/status/?page=2")
    changed = client.post(f"/admin/accounts/account/{personas.account_a.pk}/change/", {})
    assert changed.status_code == 302 and changed["Location"].startswith(VERIFY)


def test_the_api_and_scripts_that_ask_for_json_get_a_403_in_json(personas: Personas):
    phone(personas.mallory)
    client = password_only(personas.mallory)

    api = client.get("/loyalty/v1/lists")
    assert api.status_code == 403
    assert api.json()["error"] == "two_factor_required"
    assert api.json()["verify_url"] == VERIFY
    script = client.get(LIST_PAGE, HTTP_ACCEPT="application/json")
    assert script.status_code == 403 and script.json()["error"] == "two_factor_required"


def test_a_verified_staff_session_passes(personas: Personas, client: Client):
    client.force_login(personas.root)  # password and code (tests/conftest.py)

    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get("/").status_code == 302 and client.get("/")["Location"] == "/admin/"


def test_customers_without_two_factor_sign_in_are_never_asked(personas: Personas):
    client = password_only(personas.alice)

    assert client.get("/").status_code == 200
    assert client.get(LIST_PAGE).status_code == 200
    assert client.get(VERIFY)["Location"] == reverse("accounts:login")  # nothing to give


def test_a_customer_who_turned_it_on_is_asked_in_her_older_sessions(personas: Personas):
    older = password_only(personas.alice)
    current = password_only(personas.alice)
    current.post(reverse("two_factor:settings"), {"action": "start"})
    device = TOTPDevice.objects.get(user=personas.alice, confirmed=False)

    current.post(reverse("two_factor:settings"), {"action": "confirm", "code": code(device)})

    assert current.get("/").status_code == 200  # the session that gave the code
    assert sent_to_the_code(older.get("/"), "/")


def test_a_session_from_before_the_user_became_staff_must_add_an_app(personas: Personas):
    client = password_only(personas.bob)
    assert client.get("/").status_code == 200
    User.objects.filter(pk=personas.bob.pk).update(role=Role.MANAGER, account=None)

    assert sent_to_the_code(client.get("/admin/"), "/admin/")
    assert client.get(f"{VERIFY}?next=/admin/")["Location"] == SETUP
    page = client.get(SETUP)
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=personas.bob, confirmed=False)
    done = client.post(SETUP, {"code": code(device)})

    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_code_page_lets_the_session_through_to_where_it_was_going(personas: Personas):
    device = phone(personas.root)
    client = password_only(personas.root)
    first = client.get("/admin/accounts/user/")

    page = client.get(first["Location"])
    assert page.status_code == 200 and "Enter your code" in page.text
    done = client.post(first["Location"], {"code": code(device)})

    assert done.status_code == 302 and done["Location"] == "/admin/accounts/user/"
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.session["otp_device_id"] == device.persistent_id


def test_next_never_leads_off_the_site(personas: Personas):
    device = phone(personas.root)
    client = password_only(personas.root)

    client.get(f"{VERIFY}?next=https://evil.example/")
    done = client.post(VERIFY, {"code": code(device)})

    assert done["Location"] == "/"


def test_too_many_wrong_codes_sign_the_session_out(personas: Personas, time_machine):
    time_machine.move_to("2026-05-01T10:00:00+00:00", tick=False)
    device = phone(personas.root)
    client = password_only(personas.root)
    wrong = "123456" if code(device) != "123456" else "654321"

    for _ in range(two_factor.MAX_TRIES - 1):
        assert client.post(VERIFY, {"code": wrong}).status_code in {200, 429}
        time_machine.shift(60)  # past the device's wait: each code is checked
    last = client.post(VERIFY, {"code": wrong})

    assert last["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/")["Location"].startswith("/admin/login/")


def test_signing_in_and_out_and_the_public_pages_stay_open(personas: Personas):
    phone(personas.root)
    client = password_only(personas.root)

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in {200, 503}
    assert client.get(VERIFY).status_code == 200
    assert client.get("/static/css/app.css").status_code == 200
    assert client.get("/api/schema/").status_code == 200
    assert client.get(reverse("tracking_open", args=["not-a-token"])).status_code != 302
    assert client.get(reverse("unsubscribe", args=["not-a-token"])).status_code != 302
    assert client.get(reverse("optin_confirm", args=["not-a-token"])).status_code != 302
    out = client.post(reverse("accounts:logout"))
    assert out.status_code == 302 and not out["Location"].startswith(VERIFY)
    assert "_auth_user_id" not in client.session
