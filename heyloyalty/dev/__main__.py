"""`make run` and `make test`: set up, start what is missing, run.

    python -m heyloyalty.dev env     write a local .env (DEBUG on, a random SECRET_KEY)
    python -m heyloyalty.dev run     the whole product: web, worker, beat, watchdog (+ embedded
                                     services)
    python -m heyloyalty.dev test    the whole test suite (+ embedded services)
    python -m heyloyalty.dev wait-ready   wait for a green /readyz (run starts the watchdog so)

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
import time
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
        # Each embedded service's URL is set for the processes started below, so that an
        # EMBEDDED_*_PORT other than the settings' default port is the one they use.
        if not os.environ.get("DATABASE_URL"):
            pg = EmbeddedPostgres(VAR / "pg", _port("EMBEDDED_PG_PORT", 5433))
            stack.callback(pg.stop)
            pg.start()
            pg.ensure_database("heyloyalty")
            os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{pg.port}/heyloyalty"
        if not os.environ.get("REDIS_URL"):
            rd = EmbeddedRedis(
                VAR / "redis", VAR / "log" / "redis.log", _port("EMBEDDED_REDIS_PORT", 6380)
            )
            stack.callback(rd.stop)
            rd.start()
            os.environ["REDIS_URL"] = rd.url
        if mail and not os.environ.get("SMTP_URL"):
            sink = MailSink(
                VAR / "mail", VAR / "log" / "mail.log", _port("EMBEDDED_SMTP_PORT", 1025)
            )
            stack.callback(sink.stop)
            sink.start()
            os.environ["SMTP_URL"] = f"smtp://127.0.0.1:{sink.port}"
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
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - our own http URL  # nosec B310
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
            name, _, command = (part.strip() for part in line.partition(":"))
            if not command:
                continue
            if name == "watchdog":
                # Started once the rest answers /readyz: its first pass would otherwise come
                # before the worker's first heartbeat and open an incident on every start.
                command = f"python -m heyloyalty.dev wait-ready && exec {command}"
            manager.add_process(name, command, env=dict(os.environ), cwd=str(BASE_DIR))
        _banner(os.environ["PUBLIC_URL"], seed)
        manager.loop()
        return int(manager.returncode or 0)


def wait_ready(timeout: float = 120) -> int:
    """Wait until PUBLIC_URL/readyz answers 200, or give up after ``timeout`` seconds: the
    watchdog then starts anyway and reports what is still down. Always 0."""
    url = f"{os.environ.get('PUBLIC_URL', 'http://127.0.0.1:8000')}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own http URL  # nosec B310
                if response.status == 200:
                    return 0
        except OSError:  # not up yet, or 503 (HTTPError) while the worker and beat start
            pass
        time.sleep(1)
    print(f"{url} not ready within {timeout:.0f} s; starting the watchdog anyway", flush=True)
    return 0


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
    if command == "wait-ready":
        return wait_ready()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
