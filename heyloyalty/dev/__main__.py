"""`make run` and `make test`: set up, start what is missing, run.

    python -m heyloyalty.dev env     write a local .env (DEBUG on, a random SECRET_KEY)
    python -m heyloyalty.dev run     the whole product: web, worker, beat (+ embedded services)
    python -m heyloyalty.dev test    the whole test suite (+ embedded services)

Where DATABASE_URL, REDIS_URL or SMTP_URL is unset, the embedded PostgreSQL, Redis or
SMTP sink is started (data under var/) and stopped again on exit.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR = BASE_DIR / "var"
PY = sys.executable


def env_file() -> None:
    """Write .env, or add what a newer version needs to an existing one."""
    path = BASE_DIR / ".env"
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    names = {line.split("=", 1)[0].strip() for line in existing.splitlines() if "=" in line}
    wanted = {
        "DEBUG": "1",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "FIELD_ENCRYPTION_KEYS": _new_field_key(),
        "BACKUP_ENCRYPTION_KEYS": _new_field_key("b1"),
    }
    missing = {k: v for k, v in wanted.items() if k not in names}
    if not missing:
        return
    header = (
        "" if existing else "# Local settings for make run / make test. Never commit this file.\n"
    )
    if existing and not existing.endswith("\n"):
        existing += "\n"
    path.write_text(
        existing + header + "".join(f"{k}={v}\n" for k, v in missing.items()), encoding="utf-8"
    )
    path.chmod(0o600)
    print(f"wrote {', '.join(missing)} to {path}")


def _new_field_key(key_id: str = "k1") -> str:
    """A key for the key ring (heyloyalty/keys.py): ``id:key``, also for backup keys."""
    from cryptography.fernet import Fernet

    return f"{key_id}:{Fernet.generate_key().decode()}"


def _load_env() -> None:
    sys.path.insert(0, str(BASE_DIR))
    from heyloyalty.env import load_env_file

    load_env_file(BASE_DIR / ".env")
    # The console scripts (granian, celery, pytest) live beside this Python.
    os.environ["PATH"] = f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@contextmanager
def services(*, mail: bool) -> Iterator[None]:
    """Start the embedded services for every service URL that is not set."""
    from heyloyalty.dev.embedded import EmbeddedPostgres, EmbeddedRedis, MailSink

    (VAR / "log").mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if not os.environ.get("DATABASE_URL"):
            pg = EmbeddedPostgres(VAR / "pg", _port("EMBEDDED_PG_PORT", 5433))
            stack.callback(pg.stop)
            pg.start()
            pg.ensure_database("heyloyalty")
        if not os.environ.get("REDIS_URL"):
            rd = EmbeddedRedis(
                VAR / "redis", VAR / "log" / "redis.log", _port("EMBEDDED_REDIS_PORT", 6380)
            )
            stack.callback(rd.stop)
            rd.start()
        if mail and not os.environ.get("SMTP_URL"):
            sink = MailSink(
                VAR / "mail", VAR / "log" / "mail.log", _port("EMBEDDED_SMTP_PORT", 1025)
            )
            stack.callback(sink.stop)
            sink.start()
        yield


def manage(*args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args],
        cwd=BASE_DIR,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return result.stdout or ""


def _banner(url: str, seed: dict[str, Any]) -> None:
    def wait_and_print() -> None:
        from heyloyalty.dev.embedded import wait_for

        def up() -> bool:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)

        try:
            wait_for(up, "the web server", timeout=120)
        except RuntimeError as error:
            print(f"\n!! {error}", flush=True)
            return
        lines = [f"    {x['role']:<8} {x['email']:<22} {x['password']}" for x in seed["logins"]]
        print(
            "\n"
            + "=" * 64
            + f"\n  Heyloyalty is running at {url}/\n  Admin panel: {url}/admin/\n"
            + "  Demo logins (role, email, password):\n"
            + "\n".join(lines)
            + "\n  Mail sent by the app is kept in var/mail/ unless SMTP_URL is set."
            + "\n  Ctrl-C stops everything; data stays in var/ for the next run.\n"
            + "=" * 64
            + "\n",
            flush=True,
        )

    threading.Thread(target=wait_and_print, daemon=True).start()


def run() -> int:
    from honcho.manager import Manager
    from honcho.printer import Printer

    port = _port("PORT", 8000)
    os.environ.setdefault("BIND", f"127.0.0.1:{port}")
    os.environ.setdefault("PUBLIC_URL", f"http://127.0.0.1:{port}")
    print("Starting Heyloyalty", flush=True)
    with services(mail=True):
        print("  migrating the database", flush=True)
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        seed = json.loads(manage("seed_demo", "--json", capture=True))
        manager = Manager(Printer(sys.stdout))
        for line in (BASE_DIR / "Procfile").read_text().splitlines():
            name, _, command = line.partition(":")
            if command.strip():
                manager.add_process(
                    name.strip(), command.strip(), env=dict(os.environ), cwd=str(BASE_DIR)
                )
        _banner(os.environ["PUBLIC_URL"], seed)
        manager.loop()
        return int(manager.returncode or 0)


def test(args: list[str]) -> int:
    os.environ.setdefault("TEST_DATABASE_NAME", f"test_heyloyalty_{os.getpid()}")
    with services(mail=False):
        manage("collectstatic", "--noinput", "-v", "0")  # the tests serve them, as production does
        return subprocess.call([PY, "-m", "pytest", *args], cwd=BASE_DIR)


def main() -> int:
    command, *rest = sys.argv[1:] or ["help"]
    if command == "env":
        env_file()
        return 0
    _load_env()
    if command == "run":
        return run()
    if command == "test":
        return test(rest)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
