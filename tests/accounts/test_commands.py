import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Account, User
from members.models import Member
from tests.conftest import Personas


def run(*args: str, stdin: str | None = None, monkeypatch=None) -> dict:
    out = io.StringIO()
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_account_create_prints_json(personas: Personas):
    result = run("account_create", "--name", "Account C", "--manager", "mallory@heyloyalty.test")
    account = Account.objects.get(pk=result["id"])
    assert account.manager == personas.mallory
    assert result["manager_access"] == "allowed"


def test_account_create_with_no_manager_access_asks_first(db):
    result = run("account_create", "--name", "Careful Co", "--no-manager-access")
    assert result["manager_access"] == "ask"


def test_account_create_names_an_unknown_manager(db):
    with pytest.raises(CommandError, match="--manager"):
        run("account_create", "--name", "X", "--manager", "nobody@x.test")


def test_user_create_generates_a_password_shown_once(personas: Personas):
    result = run(
        "user_create",
        "--email",
        "dan@a.test",
        "--account",
        str(personas.account_a.pk),
        "--role",
        "owner",
    )
    user = User.objects.get(pk=result["id"])
    assert user.check_password(result["password"])
    assert user.must_change_password
    assert user.password.startswith("argon2$argon2id$")


def test_user_create_reads_a_password_from_stdin(personas: Personas, monkeypatch):
    result = run(
        "user_create",
        "--email",
        "ops@heyloyalty.test",
        "--role",
        "admin",
        "--password-stdin",
        stdin="chosen-by-ops-team-1\n",
        monkeypatch=monkeypatch,
    )
    assert "password" not in result
    assert User.objects.get(pk=result["id"]).check_password("chosen-by-ops-team-1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "x@a.test", "--role", "owner"], "--account is required"),
        (["--email", "x@a.test", "--role", "owner", "--account", "999999"], "no account"),
        (["--email", "x@a.test", "--role", "manager", "--account", "1"], "has no account"),
        (["--email", "not-an-email", "--role", "admin"], "email"),
    ],
)
def test_user_create_explains_bad_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("user_create", *args)


def test_user_create_refuses_a_weak_password(db, monkeypatch):
    with pytest.raises(CommandError, match="too short"):
        run(
            "user_create",
            "--email",
            "w@heyloyalty.test",
            "--role",
            "admin",
            "--password-stdin",
            stdin="short\n",
            monkeypatch=monkeypatch,
        )


def test_user_create_refuses_a_duplicate_email(personas: Personas):
    with pytest.raises(CommandError, match="already exists"):
        run(
            "user_create",
            "--email",
            "ALICE@a.test",
            "--role",
            "user",
            "--account",
            str(personas.account_a.pk),
        )


def test_seed_demo_is_idempotent(db, settings):
    settings.DEBUG = True
    first = run("seed_demo")
    second = run("seed_demo")
    assert first == second
    assert first["list"]["members"] == 1000
    assert Member.objects.count() == 1000
    assert User.objects.count() == 3
    assert {login["role"] for login in first["logins"]} == {"admin", "manager", "owner"}
    for login in first["logins"]:
        user = User.objects.get(email=login["email"])
        assert user.check_password(login["password"])
        assert not user.must_change_password


def test_seed_demo_refuses_to_run_in_production(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        run("seed_demo")
