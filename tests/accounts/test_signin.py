import pytest
from axes.utils import reset
from django.test import Client, override_settings
from django.urls import reverse

from tests.conftest import Personas

LOGIN = reverse("accounts:login")


def sign_in(client: Client, email: str, password: str, ip: str = "198.51.100.7", **extra):
    return client.post(LOGIN, {"username": email, "password": password}, REMOTE_ADDR=ip, **extra)


def test_alice_signs_in_and_sees_her_account(client: Client, personas: Personas):
    response = sign_in(client, "alice@a.test", personas.password)
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:home")
    home = client.get(reverse("accounts:home"))
    assert home.status_code == 200
    assert "Account A Bakery" in home.text
    assert "Account B Bikes" not in home.text


def test_email_is_case_insensitive(client: Client, personas: Personas):
    response = sign_in(client, "  Alice@A.TEST ", personas.password)
    assert response.status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_clear_message(client, personas):
    wrong = sign_in(client, "alice@a.test", "not-her-password")
    unknown = sign_in(client, "nobody@a.test", "whatever-password")
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert "That email and password do not match" in response.text


def test_sixth_failed_sign_in_is_refused_with_429(client: Client, personas: Personas):
    for attempt in range(1, 6):
        response = sign_in(client, "alice@a.test", f"wrong-{attempt}")
        assert response.status_code in (200, 429), attempt
    sixth = sign_in(client, "alice@a.test", "wrong-6")
    assert sixth.status_code == 429
    assert "Sign-in paused" in sixth.text
    assert "contact your account manager" in sixth.text
    # Locked even with the right password, for an hour.
    assert sign_in(client, "alice@a.test", personas.password).status_code == 429


def test_first_four_failures_are_ordinary_form_errors(client: Client, personas: Personas):
    for attempt in range(4):
        assert sign_in(client, "alice@a.test", f"wrong-{attempt}").status_code == 200


def test_lockout_holds_one_email_and_one_ip_only(client: Client, personas: Personas):
    for attempt in range(6):
        sign_in(client, "alice@a.test", f"wrong-{attempt}", ip="203.0.113.9")
    assert sign_in(Client(), "alice@a.test", personas.password, ip="203.0.113.9").status_code == 429
    # Another user from the same IP, and the same user from another IP, sign in at once.
    assert sign_in(Client(), "bob@a.test", personas.password, ip="203.0.113.9").status_code == 302
    assert sign_in(Client(), "alice@a.test", personas.password, ip="192.0.2.44").status_code == 302


def test_case_games_do_not_dodge_the_lockout(client: Client, personas: Personas):
    for attempt in range(6):
        sign_in(
            client, ["alice@a.test", "ALICE@a.test", " Alice@A.test"][attempt % 3], "wrong-pw-x"
        )
    assert sign_in(client, "aLiCe@a.test", personas.password).status_code == 429


def test_lockout_ends_after_an_hour(client: Client, personas: Personas, time_machine):
    time_machine.move_to("2026-01-01 10:00:00+00:00", tick=False)
    for attempt in range(6):
        sign_in(client, "alice@a.test", f"wrong-{attempt}")
    time_machine.move_to("2026-01-01 10:59:00+00:00", tick=False)
    assert sign_in(client, "alice@a.test", personas.password).status_code == 429
    time_machine.move_to("2026-01-01 11:01:00+00:00", tick=False)
    assert sign_in(client, "alice@a.test", personas.password).status_code == 302


def test_an_admin_can_lift_the_lock(client: Client, personas: Personas):
    for attempt in range(6):
        sign_in(client, "alice@a.test", f"wrong-{attempt}")
    assert sign_in(client, "alice@a.test", personas.password).status_code == 429
    admin = Client()
    admin.force_login(personas.root)
    attempts = admin.get(reverse("admin:axes_accessattempt_changelist"))
    assert attempts.status_code == 200
    assert "alice@a.test" in attempts.text
    reset(username="alice@a.test")
    assert sign_in(client, "alice@a.test", personas.password).status_code == 302


def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(client, personas):
    for attempt in range(6):
        sign_in(
            client, "alice@a.test", f"wrong-{attempt}", HTTP_X_FORWARDED_FOR=f"10.9.9.{attempt}"
        )
    # Every attempt counted against the real peer address, whatever the header said.
    response = sign_in(client, "alice@a.test", personas.password, HTTP_X_FORWARDED_FOR="10.1.1.1")
    assert response.status_code == 429


@override_settings(TRUSTED_PROXIES=["127.0.0.1"])
def test_behind_a_trusted_proxy_the_forwarded_client_is_locked(client, personas):
    proxy = "127.0.0.1"
    for attempt in range(6):
        sign_in(
            client,
            "alice@a.test",
            f"wrong-{attempt}",
            ip=proxy,
            HTTP_X_FORWARDED_FOR="203.0.113.50",
        )
    locked = sign_in(
        client, "alice@a.test", personas.password, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.50"
    )
    assert locked.status_code == 429
    other_client = sign_in(
        Client(), "alice@a.test", personas.password, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.51"
    )
    assert other_client.status_code == 302


def test_sign_out_ends_the_session(client: Client, personas: Personas):
    client.force_login(personas.alice)
    assert client.post(reverse("accounts:logout")).status_code == 302
    response = client.get(reverse("accounts:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_an_expired_session_asks_to_sign_in_again(client: Client, personas: Personas):
    client.force_login(personas.alice)
    client.cookies.pop("sessionid")  # what the browser has once the session is gone
    response = client.get(reverse("accounts:home"), follow=True)
    assert response.status_code == 200
    assert "your session has ended" in response.text


def test_a_forged_csrf_token_gets_a_clear_page_not_a_500(personas: Personas):
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN)
    response = client.post(
        LOGIN,
        {
            "username": "alice@a.test",
            "password": personas.password,
            "csrfmiddlewaretoken": "forged",
        },
    )
    assert response.status_code == 403
    assert "This form has expired" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/password_reset/",
        "/accounts/password_reset/",
        "/password/reset/",
        "/admin/password_reset/",
        "/reset/MQ/set-password/",
    ],
)
def test_no_password_reset_url_exists(client: Client, path: str, personas: Personas):
    client.force_login(personas.root)  # signed in, so the admin cannot hide a 404 behind its login
    assert client.get(path).status_code == 404
    assert Client().get(path).status_code in (302, 404)


def test_the_sign_in_page_sends_people_to_their_account_manager(client: Client):
    page = client.get(LOGIN)
    assert "Contact your account manager" in page.text
    assert "reset" not in page.text.lower()


def test_no_reset_route_is_named_anywhere():
    from django.urls import NoReverseMatch

    for name in ("password_reset", "admin_password_reset", "password_reset_confirm"):
        with pytest.raises(NoReverseMatch):
            reverse(name)


def test_the_admin_sign_in_offers_no_reset_link(client: Client):
    page = client.get(reverse("admin:login"))
    assert page.status_code == 200
    assert "password_reset" not in page.text
    assert "Forgotten your password" not in page.text
