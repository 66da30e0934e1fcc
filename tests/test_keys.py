"""The key ring (heyloyalty/keys.py) and `keys_rotate`: ids and creation dates, keys from
files, and rotations that re-encrypt, retire the old key, log nobody out and break no
link already mailed. Every rotation is audited, never with a key's value."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.urls import reverse

from accounts import services as account_services
from accounts.models import ApiKey
from audit.models import AuditEvent
from backups.services import keys_remind
from campaigns import tracking
from campaigns.models import Campaign, Delivery, Link
from campaigns.tokens import click_read, click_token, sign
from heyloyalty import keys
from members import services as member_services
from members.models import Webhook

TODAY = date(2026, 11, 27)


def fernet_key() -> str:
    return Fernet.generate_key().decode()


def run(*args: str) -> dict:
    from io import StringIO

    out = StringIO()
    call_command("keys_rotate", *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


# -- reading keys -------------------------------------------------------------------------


def test_a_key_has_an_id_and_a_creation_date():
    material = fernet_key()
    dated, plain = keys.parse_keys(f"f2:2026-03-01:{material}, k1:{fernet_key()}", name="X")

    assert (dated.id, dated.created, dated.material) == ("f2", date(2026, 3, 1), material)
    assert (plain.id, plain.created) == ("k1", None)
    assert material not in repr(dated)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("k1", "each key is written"),
        ("k1:2026-13-01:" + "A" * 44, "not YYYY-MM-DD"),
        ("k1:short", "not 32 url-safe"),
        (f"k1:{'A' * 43}=,k1:{'B' * 43}=", "unique"),
    ],
)
def test_a_badly_written_key_is_refused_with_its_reason(spec, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        keys.parse_keys(spec, name="FIELD_ENCRYPTION_KEYS")


def test_a_secret_key_made_by_rotation_carries_its_id_and_date_others_a_fingerprint():
    made = keys.generate(keys.SECRET, [keys.secret_key("x" * 60)])
    assert made.id == "s1" and made.created == keys.today()
    assert keys.secret_key(made.material) == made
    other = keys.secret_key("some-hand-made-secret-key-" * 3)
    assert other.id.startswith("s-") and other.created is None
    assert "hand-made" not in other.id


def test_field_keys_come_from_a_file_and_a_changed_file_is_read_again(
    tmp_path, monkeypatch, settings
):
    path = tmp_path / "field-keys"
    path.write_text(f"f1:2026-01-01:{fernet_key()}\n")
    monkeypatch.delenv("FIELD_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS_FILE", str(path))
    assert [k.id for k in keys.field_keys()] == ["f1"]
    sealed = keys.encrypt("hush")

    path.write_text(f"f2:2026-02-01:{fernet_key()},{path.read_text().strip()}\n")

    assert [k.id for k in keys.field_keys()] == ["f2", "f1"]
    assert keys.decrypt(sealed) == "hush"
    assert keys.encrypt("hush").startswith("f2$")


# -- field keys ---------------------------------------------------------------------------


@pytest.fixture
def field_key_file(tmp_path: Path, monkeypatch, settings) -> Path:
    path = tmp_path / "field-keys"
    spec = f"f1:2026-01-01:{fernet_key()}"
    path.write_text(spec + "\n")
    monkeypatch.delenv("FIELD_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS_FILE", str(path))
    settings.FIELD_ENCRYPTION_KEYS = spec
    return path


def secrets_of(personas) -> tuple[str, str]:
    _, api_secret = account_services.apikey_create(account=personas.account_a, name="shop")
    member_list = member_services.list_create(account=personas.account_a, name="news")
    webhook_secret = uuid.uuid4().hex
    Webhook.objects.create(
        list=member_list,
        url="https://hooks.example.com/",
        secret_encrypted=keys.encrypt(webhook_secret),
    )
    return api_secret, webhook_secret


def test_field_rotation_re_encrypts_every_secret_and_retires_the_old_key(personas, field_key_file):
    api_secret, webhook_secret = secrets_of(personas)
    assert ApiKey.objects.get().secret_encrypted.startswith("f1$")

    result = run("--kind", "field")

    assert result["added"] == "f2" and result["retired"] == ["f1"]
    assert result["reencrypted"] == 2
    assert field_key_file.read_text().startswith("f2:") and "f1:" not in field_key_file.read_text()
    assert [k.id for k in keys.field_keys()] == ["f2"]
    rows = [ApiKey.objects.get().secret_encrypted, Webhook.objects.get().secret_encrypted]
    assert all(row.startswith("f2$") for row in rows)  # none under the old key
    assert keys.decrypt(rows[0]) == api_secret
    assert keys.decrypt(rows[1]) == webhook_secret
    event = AuditEvent.objects.filter(action="keys.rotated").latest("seq")
    assert event.extra["kind"] == "field" and event.extra["retired"] == ["f1"]
    assert field_key_file.read_text().split(":")[-1].strip() not in json.dumps(event.extra)
    assert "set" not in result  # nothing to set by hand: the file was written


def test_field_keys_in_the_environment_rotate_in_two_steps(personas, settings, monkeypatch):
    old = f"k1:{fernet_key()}"
    settings.FIELD_ENCRYPTION_KEYS = old
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", old)
    api_secret, _ = secrets_of(personas)

    first = run("--kind", "field")

    # Nothing can be written: the new ring is printed, and nothing re-encrypted yet.
    assert first["added"] == "f2" and first["reencrypted"] == 0
    assert first["set"]["FIELD_ENCRYPTION_KEYS"].startswith("f2:")
    assert "--finish" in first["next_step"]
    assert ApiKey.objects.get().secret_encrypted.startswith("k1$")

    # The operator sets it everywhere and restarts; then finishes.
    settings.FIELD_ENCRYPTION_KEYS = first["set"]["FIELD_ENCRYPTION_KEYS"]
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", settings.FIELD_ENCRYPTION_KEYS)
    second = run("--kind", "field", "--finish")

    assert second["retired"] == ["k1"] and second["reencrypted"] == 2
    assert second["set"]["FIELD_ENCRYPTION_KEYS"].count(":") == 2  # the new key alone
    assert ApiKey.objects.get().secret_encrypted.startswith("f2$")
    settings.FIELD_ENCRYPTION_KEYS = second["set"]["FIELD_ENCRYPTION_KEYS"]
    assert keys.decrypt(ApiKey.objects.get().secret_encrypted) == api_secret


# -- the secret key -----------------------------------------------------------------------


@pytest.fixture
def tracking_buffer(settings):
    key = f"test:tracking:{uuid.uuid4().hex[:12]}"
    settings.TRACKING_BUFFER_KEY = key
    tracking.deliveries.clear()
    tracking.links.clear()
    tracking._down_until.clear()
    yield key
    tracking.buffer_client().delete(key, f"{key}:processing")


def test_after_a_secret_rotation_nobody_is_signed_out_and_mailed_links_still_work(
    personas, client, settings, tmp_path, monkeypatch, tracking_buffer
):
    old = settings.SECRET_KEY
    secret_file, fallbacks_file = tmp_path / "secret", tmp_path / "fallbacks"
    secret_file.write_text(old)
    fallbacks_file.write_text("")
    for name, path in (("SECRET_KEY", secret_file), ("SECRET_KEY_FALLBACKS", fallbacks_file)):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(f"{name}_FILE", str(path))
    settings.SECRET_KEY_FALLBACKS = []
    campaign = Campaign.objects.create(account=personas.account_a, name="Mailed", status="sent")
    Link.objects.create(campaign=campaign, position=0, url="https://bakery.example/bread")
    delivery = Delivery.objects.create(campaign=campaign, email="ann@x.test", status="sent")
    mailed = f"/c/{click_token(delivery.pk, 0)}"  # in a message sent before the rotation
    client.force_login(personas.alice)
    assert client.get(reverse("accounts:home")).status_code == 200

    result = run("--kind", "secret")

    new = secret_file.read_text().strip()
    assert new != old and keys.secret_key(new).id == result["added"] == "s1"
    assert fallbacks_file.read_text().strip() == old
    assert result["retired"] == []
    # The processes restart with what the files now say.
    settings.SECRET_KEY = new
    settings.SECRET_KEY_FALLBACKS = [fallbacks_file.read_text().strip()]
    tracking.deliveries.clear()
    tracking.links.clear()

    home = client.get(reverse("accounts:home"))
    assert home.status_code == 200, "signed out by the rotation"
    click = client.get(mailed, HTTP_USER_AGENT="Mozilla/5.0 (Macintosh)", REMOTE_ADDR="203.0.113.9")
    assert click.status_code == 302 and click["Location"] == "https://bakery.example/bread"
    assert click_read(click_token(delivery.pk, 0)) == (delivery.pk, 0)  # signed with the new
    forged = "/c/" + sign(b"c", b"\x00" * 10)
    settings.SECRET_KEY_FALLBACKS = []
    assert client.get(forged).status_code == 404
    assert AuditEvent.objects.filter(action="keys.rotated", target_id="s1").exists()


def test_an_old_secret_key_is_retired_after_the_retirement_period(
    personas, settings, tmp_path, monkeypatch, time_machine
):
    time_machine.move_to("2026-01-10T12:00:00+00:00", tick=False)
    first = keys.generate(keys.SECRET, [])
    secret_file, fallbacks_file = tmp_path / "secret", tmp_path / "fallbacks"
    secret_file.write_text(first.material)
    fallbacks_file.write_text("")
    for name, path in (("SECRET_KEY", secret_file), ("SECRET_KEY_FALLBACKS", fallbacks_file)):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(f"{name}_FILE", str(path))
    run("--kind", "secret")  # s2 replaces s1 on 2026-01-10
    settings.SECRET_KEY_RETIRE_DAYS = 365

    time_machine.move_to("2026-06-01T12:00:00+00:00", tick=False)
    assert run("--kind", "secret")["retired"] == []  # s1 still verifies older links
    time_machine.move_to("2027-02-01T12:00:00+00:00", tick=False)
    result = run("--kind", "secret")

    assert result["retired"] == ["s1"]
    assert result["keys"] == ["s4", "s3", "s2"]
    assert first.material not in fallbacks_file.read_text()


# -- reminders ----------------------------------------------------------------------------


def test_a_key_older_than_its_rotation_period_is_a_reminder_without_its_value(
    personas, settings, mailoutbox, time_machine
):
    time_machine.move_to("2026-11-27T08:00:00+00:00", tick=False)
    settings.ALERT_EMAILS = ["oncall@ops.example"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    old = fernet_key()
    settings.FIELD_ENCRYPTION_KEYS = f"f3:{(TODAY - timedelta(days=91)).isoformat()}:{old}"
    settings.BACKUP_ENCRYPTION_KEYS = (
        f"b2:{(TODAY - timedelta(days=10)).isoformat()}:{fernet_key()}"
    )
    settings.SECRET_KEY = f"s4:{(TODAY - timedelta(days=5)).isoformat()}:" + "x" * 64

    due = keys_remind()

    assert [(row.kind, row.id, row.age_days) for row in due] == [("field", "f3", 91)]
    assert len(mailoutbox) == 1
    assert "f3: 91 days old" in mailoutbox[0].body
    assert old not in mailoutbox[0].body
    assert "b2" not in mailoutbox[0].body


def test_no_reminder_while_every_key_is_young(personas, settings, mailoutbox, time_machine):
    time_machine.move_to("2026-11-27T08:00:00+00:00", tick=False)
    settings.FIELD_ENCRYPTION_KEYS = f"f3:2026-11-01:{fernet_key()}"
    settings.BACKUP_ENCRYPTION_KEYS = f"b2:2026-11-01:{fernet_key()}"
    settings.SECRET_KEY = "s4:2026-11-01:" + "x" * 64

    assert keys_remind() == []
    assert not mailoutbox
