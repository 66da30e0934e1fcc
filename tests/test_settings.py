"""Starting the process: configuration errors stop it with a message that says what to set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from heyloyalty import env

BASE = Path(__file__).resolve().parent.parent
STRONG = "x" * 10 + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0-_zz"
FIELD_KEYS = "k1:" + "A" * 43 + "="
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": STRONG, "FIELD_ENCRYPTION_KEYS": FIELD_KEYS}


def manage_check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "DATABASE_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=120,
        env={**keep, "ENV_FILE": "/dev/null", **extra},
    )


def test_without_debug_a_missing_secret_key_stops_the_process_and_says_why():
    result = manage_check({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "Set SECRET_KEY" in result.stderr


def test_without_debug_a_weak_secret_key_stops_the_process():
    result = manage_check({"DEBUG": "0", "SECRET_KEY": "changeme"})
    assert result.returncode != 0
    assert "SECRET_KEY is too weak" in result.stderr


def test_a_secret_key_may_come_from_a_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(STRONG)
    result = manage_check(
        {
            "DEBUG": "0",
            "FIELD_ENCRYPTION_KEYS": FIELD_KEYS,
            "SECRET_KEY_FILE": str(key_file),
            "ALLOWED_HOSTS": "x",
        }
    )
    assert result.returncode == 0, result.stderr


def test_a_strong_key_starts():
    result = manage_check({**PRODUCTION, "ALLOWED_HOSTS": "example.com"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://127.0.0.1:1025",
            {
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": 1025,
                "EMAIL_USE_TLS": False,
                "EMAIL_USE_SSL": False,
            },
        ),
        (
            "smtp://u%40x:p%3Ass@mail.example.com?starttls=1",
            {
                "EMAIL_HOST_USER": "u@x",
                "EMAIL_HOST_PASSWORD": "p:ss",
                "EMAIL_PORT": 587,
                "EMAIL_USE_TLS": True,
            },
        ),
        (
            "smtps://mail.example.com",
            {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True, "EMAIL_USE_TLS": False},
        ),
    ],
)
def test_smtp_url_is_parsed(url, expected):
    parsed = env.parse_smtp_url(url)
    for key, value in expected.items():
        assert parsed[key] == value


def test_a_bad_smtp_url_is_explained():
    with pytest.raises(ValueError, match="SMTP_URL"):
        env.parse_smtp_url("http://mail")


def test_a_bad_boolean_is_explained(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ValueError, match="SOME_FLAG"):
        env.get_bool("SOME_FLAG", False)


def test_production_settings_pass_the_deploy_check():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": os.environ["PATH"],
            "ENV_FILE": "/dev/null",
            **PRODUCTION,
            "ALLOWED_HOSTS": "mail.example.com",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_debug_missing_field_encryption_keys_stop_the_process():
    result = manage_check({"DEBUG": "0", "SECRET_KEY": STRONG, "ALLOWED_HOSTS": "x"})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS is not set" in result.stderr
