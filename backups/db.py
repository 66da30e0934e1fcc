"""Connections for backups and restores: raw psycopg2, to the app's database or another.

Backups stream with ``COPY``, which the ORM does not speak; restores may go to a
database named only by a URL (a scratch database, a new server), migrated first by
``manage.py migrate`` in a process whose DATABASE_URL is that database (``migrate``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

import dj_database_url
import psycopg2
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg2.extensions import connection as PgConnection


def params_for_url(url: str) -> dict[str, Any]:
    config = dj_database_url.parse(url)
    return _params(dict(config))


def params_for_alias(alias: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    return _params(connections[alias].settings_dict)


def _params(config: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"dbname": config["NAME"]}
    for key, name in (("USER", "user"), ("PASSWORD", "password"), ("HOST", "host")):
        if config.get(key):
            params[name] = config[key]
    if config.get("PORT"):
        params["port"] = int(config["PORT"])
    params.update(config.get("OPTIONS") or {})
    params.pop("pool", None)
    params.pop("server_side_binding", None)
    params.pop("isolation_level", None)
    return params


def connect(params: dict[str, Any], *, application: str = "heyloyalty-backups") -> PgConnection:
    connection = psycopg2.connect(**params, application_name=application)
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    connection.commit()
    return connection


def describe(params: dict[str, Any]) -> str:
    """Where a database is, without its password: for logs, runs and messages."""
    host = params.get("host") or "local socket"
    port = params.get("port") or 5432
    return f"{params['dbname']} on {host}:{port}"


def url_for(params: dict[str, Any]) -> str:
    user = quote_plus(str(params.get("user", "")))
    password = params.get("password")
    auth = f"{user}:{quote_plus(str(password))}@" if password else f"{user}@" if user else ""
    host = params.get("host", "")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgres://{auth}{host}{port}/{quote_plus(str(params['dbname']))}"


def migrate(params: dict[str, Any]) -> None:
    """``manage.py migrate`` on another database, in a process of its own: data
    migrations write through the default connection, which there is that database."""
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": url_for(params)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"migrating {describe(params)} failed: {tail}")


def server_params(params: dict[str, Any]) -> dict[str, Any]:
    """The same server's maintenance database, for CREATE and DROP DATABASE."""
    return {**params, "dbname": "postgres"}


@contextmanager
def scratch_database(params: dict[str, Any], *, prefix: str) -> Iterator[dict[str, Any]]:
    """A new, empty database on the same server, dropped again on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = connect(server_params(params))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        try:
            yield {**params, "dbname": name}
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def columns(cursor: Any, table: str) -> list[list[str]]:
    """The table's columns and their types, in order, from the catalogue."""
    cursor.execute(
        """
        SELECT attname, format_type(atttypid, atttypmod)
        FROM pg_attribute
        WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum
        """,
        [table],
    )
    return [[name, kind] for name, kind in cursor.fetchall()]


def table_exists(cursor: Any, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    row = cursor.fetchone()
    return bool(row and row[0])


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_list(cols: list[list[str]]) -> str:
    return ", ".join(quote(name) for name, _ in cols)


SCHEMA_APPS = ("accounts", "members", "campaigns", "auth", "contenttypes")


def schema_version(cursor: Any) -> dict[str, str]:
    """The last migration applied per app whose tables a backup holds."""
    if not table_exists(cursor, "django_migrations"):
        return {}
    cursor.execute(
        "SELECT app, name FROM django_migrations WHERE app = ANY(%s) ORDER BY app, id",
        [list(SCHEMA_APPS)],
    )
    applied: dict[str, list[str]] = {}
    for app, name in cursor.fetchall():
        applied.setdefault(app, []).append(name)
    return {app: max(names) for app, names in applied.items()}
