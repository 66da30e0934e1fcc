"""Writing a backup: one snapshot of a set of tables, streamed with COPY into the file.

1. One REPEATABLE READ, READ ONLY transaction: every table as of the same moment.
2. Each table goes out as ``COPY … TO STDOUT (FORMAT binary)``; psycopg2 hands each row
   to a pipe (a C-level write), and a second thread hashes, compresses, encrypts and
   writes what comes out of it, so PostgreSQL, the copy loop and the sealing overlap.
3. The manifest (tables, columns, row counts, SHA-256 of each table's COPY data, schema
   version, extra files) closes the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.utils import timezone

from backups import container, db
from backups.tables import SETS, Table

Progress = Callable[[str], None]

# Files kept beside the database that a backup also carries (the audit log's published
# chain heads, appended daily by the audit app).
EXTRA_FILES = ("audit-heads.log",)


def _quiet(message: str) -> None:
    pass


def dump(
    *,
    connection: Any,
    writer: container.Writer,
    kind: str,
    extra_dir: Path | None = None,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Write the tables of ``kind`` to ``writer``; returns the manifest written."""
    tables = []
    with connection.cursor() as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT now(), current_setting('server_version')")
        snapshot_at, server_version = cursor.fetchone()
        schema = db.schema_version(cursor)
        for table in SETS[kind]:
            tables.append(_table(cursor, writer, table))
            progress(f"  {table.name}: {tables[-1]['rows']:,} rows, {tables[-1]['bytes']:,} bytes")
        # Group ids differ between databases: a restore finds a membership's group by name.
        cursor.execute("SELECT id, name FROM auth_group ORDER BY id")
        groups = [[group_id, name] for group_id, name in cursor.fetchall()]
        cursor.execute("COMMIT")
    files = [_file(writer, extra_dir / name) for name in EXTRA_FILES if extra_dir]
    return writer.close(
        {
            "kind": kind,
            "created_at": snapshot_at.isoformat(),
            "written_at": timezone.now().isoformat(),
            "postgres": server_version,
            "schema": schema,
            "tables": tables,
            "groups": groups,
            "files": [f for f in files if f is not None],
        }
    )


def _table(cursor: Any, writer: container.Writer, table: Table) -> dict[str, Any]:
    columns = db.columns(cursor, table.name)
    writer.table(table.name, columns)
    sql = f"COPY {db.quote(table.name)} ({db.column_list(columns)}) TO STDOUT (FORMAT binary)"
    digest, size = copy_out(cursor, sql, writer.data)
    writer.end()
    return {
        "name": table.name,
        "columns": columns,
        "rows": cursor.rowcount,
        "bytes": size,
        "sha256": digest,
    }


def copy_out(cursor: Any, sql: str, sink: Callable[[bytes], None]) -> tuple[str, int]:
    """Run a COPY TO STDOUT, handing its output to ``sink`` in blocks from another thread.

    Returns the SHA-256 and size of the output. An error on either side stops both: a
    failing sink closes the pipe, so the copy fails on its next write.
    """
    read_fd, write_fd = os.pipe()
    _widen(write_fd)
    digest = hashlib.sha256()
    state: dict[str, Any] = {"size": 0, "error": None}

    def consume() -> None:
        with io.open(read_fd, "rb", buffering=container.BLOCK) as source:  # noqa: UP020
            try:
                while block := source.read(container.BLOCK):
                    digest.update(block)
                    state["size"] += len(block)
                    sink(block)
            except BaseException as error:  # the copy must stop too: see the finally
                state["error"] = error

    consumer = threading.Thread(target=consume, name="backup-sink", daemon=True)
    consumer.start()
    try:
        with io.open(write_fd, "wb", buffering=container.BLOCK) as pipe:  # noqa: UP020
            cursor.copy_expert(sql, pipe)
    except BrokenPipeError:
        pass  # the sink failed first: its error is the one to tell
    finally:
        consumer.join()
    if state["error"] is not None:
        raise state["error"]
    return digest.hexdigest(), int(state["size"])


def _widen(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: fewer hand-overs between the two threads."""
    try:
        import fcntl

        fcntl.fcntl(fd, 1031, container.BLOCK)  # F_SETPIPE_SZ (Linux)
    except (ImportError, OSError):
        pass


def _file(writer: container.Writer, path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = path.read_bytes()
    writer.file(path.name)
    for start in range(0, len(data), container.BLOCK):
        writer.data(data[start : start + container.BLOCK])
    writer.end()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
