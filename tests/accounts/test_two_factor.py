"""Two-factor sign-in: staff cannot sign in without their code (dashboard sign-in or the
admin panel's); customers may turn it on."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import two_factor
from audit.models import AuditEvent
from tests.conftest import Personas

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
VERIFY = reverse("two_factor:verify")
SETUP = reverse("two_factor:setup")
SETTINGS = reverse("two_factor:settings")


def code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():06d}"


def confirmed(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def password_step(client: Client, email: str, password: str, path: str = LOGIN, **extra):
    return client.post(path, {"username": email, "password": password, **extra})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_a_manager_without_an_app_adds_one_before_being_signed_in(personas: Personas, time_machine):
    time_machine.move_to("2026-05-01T10:00:00+00:00", tick=False)
    client = Client()
    answer = password_step(client, personas.mallory.email, personas.password)

    assert answer.status_code == 302 and answer["Location"] == SETUP
    assert not signed_in(client)
    assert client.get("/admin/").status_code == 302  # still the sign-in

    page = client.get(SETUP)
    assert page.status_code == 200
    assert 'src="data:image/svg+xml' in page.text
    device = TOTPDevice.objects.get(user=personas.mallory, confirmed=False)
    assert two_factor.secret_text(device) in page.text

    wrong = client.post(SETUP, {"code": "000000" if code(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and "That code is not right" in wrong.text
    assert not signed_in(client)

    time_machine.shift(2)  # a wrong code makes the device wait a second before the next
    done = client.post(SETUP, {"code": code(device)})
    assert done.status_code == 302
    assert signed_in(client)
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200


def test_staff_with_an_app_need_the_code_every_time(personas: Personas):
    device = confirmed(personas.root)
    client = Client()

    answer = password_step(client, personas.root.email, personas.password)

    assert answer["Location"] == VERIFY
    assert not signed_in(client)
    assert client.get("/admin/").status_code == 302
    done = client.post(VERIFY, {"code": code(device)})
    assert done.status_code == 302 and done["Location"] == reverse("accounts:home")
    assert signed_in(client)
    assert client.session["otp_device_id"] == device.persistent_id


def test_the_admin_panel_sign_in_asks_for_the_code_too(personas: Personas):
    device = confirmed(personas.root)
    client = Client()

    assert client.get("/admin/login/").status_code == 200
    answer = password_step(
        client, personas.root.email, personas.password, "/admin/login/", next="/admin/"
    )

    assert answer["Location"] == VERIFY
    assert not signed_in(client)
    done = client.post(VERIFY, {"code": code(device)})
    assert done["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_code_works_once(personas: Personas):
    device = confirmed(personas.root)
    first, second = Client(), Client()
    password_step(first, personas.root.email, personas.password)
    password_step(second, personas.root.email, personas.password)
    token = code(device)

    assert first.post(VERIFY, {"code": token}).status_code == 302
    again = second.post(VERIFY, {"code": token})

    assert again.status_code == 200
    assert not signed_in(second)


def test_too_many_wrong_codes_send_you_back_to_the_password(personas: Personas):
    device = confirmed(personas.root)
    client = Client()
    password_step(client, personas.root.email, personas.password)
    wrong = "123456" if code(device) != "123456" else "654321"

    answers = [client.post(VERIFY, {"code": wrong}) for _ in range(two_factor.MAX_TRIES - 1)]
    # The first is checked; the next come while the device waits, and count too.
    assert [a.status_code for a in answers] == [200] + [429] * (two_factor.MAX_TRIES - 2)
    last = client.post(VERIFY, {"code": wrong})

    assert last["Location"] == LOGIN
    assert client.post(VERIFY, {"code": code(device)})["Location"] == LOGIN
    assert not signed_in(client)


def test_the_halfway_state_expires(personas: Personas, time_machine):
    device = confirmed(personas.root)
    client = Client()
    time_machine.move_to("2026-05-01T10:00:00+00:00", tick=False)
    password_step(client, personas.root.email, personas.password)

    time_machine.shift(timedelta(seconds=two_factor.PENDING_SECONDS + 1))

    assert client.post(VERIFY, {"code": code(device)})["Location"] == LOGIN
    assert not signed_in(client)


def test_the_code_pages_need_the_password_first(personas: Personas):
    client = Client()
    assert client.get(VERIFY)["Location"] == LOGIN
    assert client.post(SETUP, {"code": "123456"})["Location"] == LOGIN


def test_a_wrong_password_never_reaches_the_code(personas: Personas):
    client = Client()
    answer = password_step(client, personas.root.email, "not-the-password-9")
    assert answer.status_code == 200
    assert client.get(VERIFY)["Location"] == LOGIN


def test_customers_sign_in_with_a_password_unless_they_turned_it_on(personas: Personas):
    client = Client()
    answer = password_step(client, personas.alice.email, personas.password)
    assert answer.status_code == 302 and answer["Location"] == reverse("accounts:home")
    assert signed_in(client)

    # Alice turns it on.
    client.post(SETTINGS, {"action": "start"})
    device = TOTPDevice.objects.get(user=personas.alice, confirmed=False)
    page = client.post(SETTINGS, {"action": "confirm", "code": code(device)})
    assert page.status_code == 302
    assert TOTPDevice.objects.get(user=personas.alice).confirmed

    again = Client()
    assert password_step(again, personas.alice.email, personas.password)["Location"] == VERIFY
    assert not signed_in(again)
    again.post(VERIFY, {"code": code(device, steps_ahead=1)})
    assert signed_in(again)

    # And off again, with a code.
    refused = again.post(SETTINGS, {"action": "off", "code": "12"})
    assert refused.status_code == 200
    assert TOTPDevice.objects.filter(user=personas.alice).exists()
    again.post(SETTINGS, {"action": "off", "code": code(device, steps_ahead=2)})
    assert not TOTPDevice.objects.filter(user=personas.alice).exists()


def test_wrong_codes_on_the_settings_page_are_audited(personas: Personas, time_machine):
    """Turning it on or off with a wrong code: refused and audited as at sign-in, with the
    signed-in customer as the actor, never the code."""
    time_machine.move_to("2026-05-01T10:00:00+00:00", tick=False)
    client = Client()
    client.force_login(personas.alice)
    client.post(SETTINGS, {"action": "start"})
    adding = TOTPDevice.objects.get(user=personas.alice, confirmed=False)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    wrong_on = wrong_code(adding)
    page = client.post(SETTINGS, {"action": "confirm", "code": wrong_on})
    assert page.status_code == 200 and "That code is not right" in page.text
    assert not TOTPDevice.objects.get(pk=adding.pk).confirmed

    time_machine.shift(60)  # past django-otp's wait after the wrong code
    assert client.post(SETTINGS, {"action": "confirm", "code": code(adding)}).status_code == 302
    time_machine.shift(60)
    wrong_off = wrong_code(adding)
    page = client.post(SETTINGS, {"action": "off", "code": wrong_off}, REMOTE_ADDR="198.51.100.7")
    assert page.status_code == 200 and "That code is not right" in page.text
    assert TOTPDevice.objects.filter(user=personas.alice, confirmed=True).exists()

    events = list(
        AuditEvent.objects.filter(seq__gt=before, action="auth.two_factor_failed").order_by("seq")
    )
    assert [(e.reason, e.extra, e.actor_email) for e in events] == [
        ("wrong_code", {"step": "turn_on"}, personas.alice.email),
        ("wrong_code", {"step": "turn_off"}, personas.alice.email),
    ]
    assert events[-1].ip == "198.51.100.7"
    texts = " ".join(str(v) for e in events for v in e.__dict__.values())
    assert wrong_on not in texts and wrong_off not in texts


def test_staff_cannot_turn_it_off(personas: Personas):
    device = confirmed(personas.root)
    client = Client()
    client.force_login(personas.root)

    page = client.post(SETTINGS, {"action": "off", "code": code(device)})

    assert page.status_code == 200
    assert "Staff always sign in with a code" in page.text
    assert TOTPDevice.objects.filter(user=personas.root).exists()


def test_the_settings_page_needs_a_sign_in():
    assert Client().get(SETTINGS).status_code == 302


def test_a_main_admin_can_reset_a_lost_phone_and_a_manager_cannot(personas: Personas):
    device = confirmed(personas.mallory)
    changelist = "/admin/otp_totp/totpdevice/"
    manager = Client()
    manager.force_login(personas.mallory)
    assert manager.get(changelist).status_code == 403

    root = Client()
    root.force_login(personas.root)
    assert root.get(changelist).status_code == 200
    answer = root.post(f"{changelist}{device.pk}/delete/", {"post": "yes"})

    assert answer.status_code == 302
    assert not TOTPDevice.objects.filter(user=personas.mallory).exists()
    # Her next sign-in asks her to add an app again.
    assert password_step(Client(), personas.mallory.email, personas.password)["Location"] == SETUP


def wrong_code(device: TOTPDevice) -> str:
    return "123456" if code(device) != "123456" else "654321"


def test_a_wrong_code_is_audited_without_the_code(personas: Personas, time_machine):
    time_machine.move_to("2026-05-01T10:00:00+00:00", tick=False)
    device = confirmed(personas.mallory)
    client = Client()
    password_step(client, personas.mallory.email, personas.password)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    wrong = wrong_code(device)

    page = client.post(
        VERIFY, {"code": wrong}, REMOTE_ADDR="198.51.100.9", HTTP_USER_AGENT="Test phone"
    )

    assert page.status_code == 200 and "That code is not right" in page.text
    [event] = AuditEvent.objects.filter(seq__gt=before)
    assert (event.action, event.reason, event.extra) == (
        "auth.two_factor_failed",
        "wrong_code",
        {"step": "verify", "tries": 1},
    )
    assert (event.actor_role, event.target_repr, event.target_id) == (
        "anonymous",
        personas.mallory.email,
        str(personas.mallory.pk),
    )
    assert (event.ip, event.user_agent, event.path) == ("198.51.100.9", "Test phone", VERIFY)
    assert wrong not in " ".join(str(v) for v in event.__dict__.values())
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # django-otp's throttling counts it


def test_after_wrong_codes_the_page_says_how_long_to_wait(personas: Personas, time_machine):
    time_machine.move_to("2026-05-01T10:00:00+00:00", tick=False)
    device = confirmed(personas.root)
    client = Client()
    password_step(client, personas.root.email, personas.password)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    assert client.post(VERIFY, {"code": wrong_code(device)}).status_code == 200
    # Even the right code is not checked while the device waits: the page says so.
    waiting = client.post(VERIFY, {"code": code(device)})
    assert waiting.status_code == 429
    assert "Too many wrong codes. Wait 1 second, then try again." in waiting.text
    assert not signed_in(client)

    time_machine.shift(2)
    assert client.post(VERIFY, {"code": wrong_code(device)}).status_code == 200
    longer = client.post(VERIFY, {"code": code(device)})
    assert longer.status_code == 429 and "Wait 2 seconds" in longer.text

    events = AuditEvent.objects.filter(seq__gt=before).order_by("seq")
    assert [(e.action, e.reason) for e in events] == [
        ("auth.two_factor_failed", "wrong_code"),
        ("auth.two_factor_failed", "throttled"),
        ("auth.two_factor_failed", "wrong_code"),
        ("auth.two_factor_failed", "throttled"),
    ]
    time_machine.shift(3)
    assert client.post(VERIFY, {"code": code(device)}).status_code == 302
    assert signed_in(client)


def test_the_wait_is_said_in_danish_too(personas: Personas, time_machine):
    time_machine.move_to("2026-05-01T10:00:00+00:00", tick=False)
    device = confirmed(personas.root)
    client = Client()
    password_step(client, personas.root.email, personas.password)
    client.post(VERIFY, {"code": wrong_code(device)})

    page = client.post(VERIFY, {"code": wrong_code(device)}, HTTP_ACCEPT_LANGUAGE="da")

    assert page.status_code == 429
    assert "For mange forkerte koder. Vent 1 sekund, og prøv så igen." in page.text
