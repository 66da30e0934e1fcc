"""Restoring backups: a whole database into an empty one, or one account into a database
that holds others; and the drill that proves a file by restoring it into a scratch one.

Before anything is changed every file is opened with its key, its data hashed against
its manifest, and the manifest checked against the target's schema. The restore itself
is one transaction: a table whose data does not match its manifest (checksum or row
count) rolls everything back.

**Whole database** (``restore_database``): the target's tables in scope must be empty,
unless ``replace`` says to empty them (rows elsewhere that refer to them are deleted or
emptied as their foreign keys say). As pg_restore does, their keys (primary, unique,
foreign) and indexes are dropped, the data loaded with ``COPY … FROM STDIN (FORMAT
binary, FREEZE)``, and keys and indexes made again, each in one sorted pass: several
times faster than growing them row by row. Into an empty database given by its URL, the
opens and clicks (most of the data; no foreign key ties them to anything) load and index
on a second connection at the same time, in a transaction committed together with the
first (just before it) or rolled back with it. Rows whose parent is not in the restore (an
hourly backup newer than the three-hourly one beside it: members of a list made in
between) are dropped, or their optional reference emptied, and counted.

**One account** (``restore_account``): the files are loaded into temporary staging tables
and cut down to the account's rows. Then, in the same transaction: ids of those rows that
another account's rows already use stop the restore (nothing changed); the account's
rows that the backup does not have (made after it) are deleted, with what depends on them
outside the restore handled as their foreign keys say (cascade, set null, protect); and
the backup's rows are written with their own ids (insert, or update in place). No row of
another account is read for writing, let alone changed.
"""

# SQL here is built from our own models' table and column names (quoted), never from
# input; values go as parameters.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import models
from django.db.models.deletion import get_candidate_relations_to_delete
from psycopg2 import errors as pg_errors

from backups import container, db, tables
from backups.tables import THREE_HOURLY, Table
from heyloyalty.keys import Key

Progress = Callable[[str], None]


class RestoreError(Exception):
    """The restore stopped; nothing was changed. The message says why."""


def _quiet(message: str) -> None:
    pass


@dataclass
class Outcome:
    tables: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # rows without their parent
    deleted: dict[str, int] = field(default_factory=dict)  # account rows not in the backup

    @property
    def rows(self) -> int:
        return sum(int(t["rows"]) for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "files": sorted(self.files),
            "skipped": self.skipped,
            "deleted": self.deleted,
        }


# ----------------------------------------------------------------------- the files


def open_files(paths: list[Path], keys: tuple[Key, ...]) -> list[container.Opened]:
    """Open, authenticate and hash every file; three-hourly before hourly (parents first)."""
    if not paths:
        raise RestoreError("no backup file given")
    opened = []
    for path in paths:
        if not path.is_file():
            raise RestoreError(f"{path}: no such file")
        try:
            item = container.open_backup(path, keys)
            container.check(item)
        except container.BackupFileError as error:
            raise RestoreError(str(error)) from None
        opened.append(item)
    known = tables.by_name()
    seen: dict[str, str] = {}
    for item in opened:
        kind = item.manifest.get("kind")
        if kind not in tables.KINDS:
            raise RestoreError(f"{item.path.name}: unknown backup kind {kind!r}")
        for entry in item.manifest["tables"]:
            if entry["name"] not in known:
                raise RestoreError(f"{item.path.name}: table {entry['name']} is not one we back up")
            if entry["name"] in seen:
                raise RestoreError(
                    f"{item.path.name} and {seen[entry['name']]} both hold {entry['name']}: "
                    "give one backup of each kind"
                )
            seen[entry["name"]] = item.path.name
    return sorted(opened, key=lambda o: (o.manifest["kind"] != THREE_HOURLY, o.path.name))


def planned(opened: list[container.Opened]) -> list[Table]:
    return tables.ordered([t["name"] for o in opened for t in o.manifest["tables"]])


def check_schema(cursor: Any, opened: list[container.Opened]) -> None:
    """Every table and column of the files exists in the target with the same type, and
    the target's migrations are not older than the backup's."""
    target = db.schema_version(cursor)
    for item in opened:
        for app, name in (item.manifest.get("schema") or {}).items():
            if target.get(app, "") < name:
                raise RestoreError(
                    f"the database's schema is older than the backup's: {app} is at "
                    f"{target.get(app) or 'no migration'}, the backup was made at {name}. "
                    "Run `manage.py migrate` on it first."
                )
        for entry in item.manifest["tables"]:
            have: dict[str, str] = dict(db.columns(cursor, entry["name"]))
            if not have:
                raise RestoreError(f"the database has no table {entry['name']}")
            for name, kind in entry["columns"]:
                if have.get(name) != kind:
                    found = have.get(name) or "no such column"
                    raise RestoreError(
                        f"{entry['name']}.{name}: the backup has {kind}, the database has "
                        f"{found}; restore with the version of Heyloyalty that made the backup"
                    )


class _Hashing:
    """Reads a table's data for COPY FROM, hashing it on the way."""

    def __init__(self, reader: container.Reader) -> None:
        self.reader = reader
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        block = self.reader.read(size)
        self.digest.update(block)
        self.size += len(block)
        return block


def _load(
    cursor: Any,
    opened: container.Opened,
    *,
    into: Callable[[str], str],
    outcome: Outcome,
    progress: Progress,
    freeze: bool = False,
    only: set[str] | None = None,
    files: bool = True,
) -> None:
    """COPY every table of one file (or those ``only`` names) into ``into(table)``,
    checking each against the manifest."""
    expected = {
        t["name"]: t for t in opened.manifest["tables"] if only is None or t["name"] in only
    }
    expected_files = {f["name"]: f for f in opened.manifest.get("files", [])}
    if not expected and not files:
        return
    # Start at the first table wanted (files made before the index start at the top).
    first = next((t["name"] for t in opened.manifest["tables"] if t["name"] in expected), None)
    reader = container.Reader(opened, start_at=first if only is not None else None)
    loaded: set[str] = set()
    try:
        for record in reader:
            if record.kind == container.FILE:
                if files:
                    _load_file(reader, record.meta["file"], expected_files, outcome, opened)
                continue
            name = record.meta["table"]
            if only is not None and name not in only:
                continue  # another connection's: the reader skips its data
            entry = expected.get(name)
            if entry is None or record.meta["columns"] != entry["columns"]:
                raise RestoreError(
                    f"{opened.path.name}: the data of {name} does not match the manifest"
                )
            source = _Hashing(reader)
            cursor.copy_expert(
                f"COPY {db.quote(into(name))} ({db.column_list(entry['columns'])}) "
                f"FROM STDIN (FORMAT binary{', FREEZE' if freeze else ''})",
                source,
                size=container.BLOCK,
            )
            rows = cursor.rowcount
            if source.digest.hexdigest() != entry["sha256"] or rows != entry["rows"]:
                raise RestoreError(
                    f"{opened.path.name}: {name} does not match its manifest "
                    f"({rows:,} rows read, {entry['rows']:,} expected; checksum "
                    f"{'matches' if source.digest.hexdigest() == entry['sha256'] else 'differs'})"
                )
            outcome.tables.append({"name": name, "rows": rows, "bytes": source.size})
            progress(f"  {name}: {rows:,} rows")
            loaded.add(name)
            if not files and loaded == set(expected):
                break  # the rest of the file is another connection's
    except container.BackupFileError as error:
        raise RestoreError(str(error)) from None
    finally:
        reader.close()
    missing = set(expected) - {t["name"] for t in list(outcome.tables)}
    if missing:
        raise RestoreError(f"{opened.path.name} lacks tables its manifest lists: {sorted(missing)}")


def _load_file(
    reader: container.Reader,
    name: str,
    expected: dict[str, Any],
    outcome: Outcome,
    opened: container.Opened,
) -> None:
    data = bytearray()
    while block := reader.read(container.BLOCK):
        data += block
    entry = expected.get(name)
    if entry is None or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise RestoreError(f"{opened.path.name}: the file {name} does not match the manifest")
    outcome.files[name] = bytes(data)


def _raise_clearly(error: Exception) -> RestoreError:
    message = str(error).strip().splitlines()
    return RestoreError(
        "the database refused the restored rows, nothing was changed: " + " ".join(message[:3])
    )


# ------------------------------------------------------------------ whole database


def restore_database(
    connection: Any,
    opened: list[container.Opened],
    *,
    replace: bool = False,
    relations: bool = True,
    helper: dict[str, Any] | None = None,
    progress: Progress = _quiet,
) -> Outcome:
    """Restore the files' tables into the database of ``connection`` (see the module).

    ``relations`` off (drills into a scratch database) leaves the foreign keys dropped
    and every row as the file has it, so a file is proven on its own. ``helper`` (the
    same database's connection parameters) lets a second connection load and index,
    at the same time, the big tables that no foreign key ties to the others (opens and
    clicks); it commits just before ``connection`` does, and rolls back with it.
    """
    plan = planned(opened)
    names = [t.name for t in plan]
    outcome = Outcome()
    # Tables set aside are looked at by the second connection only: a read of them here
    # would hold a lock that its ALTER TABLE waits for, until this transaction ends.
    aside = _set_aside(plan, opened) if helper is not None and not replace else []
    with connection.cursor() as cursor:
        check_schema(cursor, opened)
        occupied = [n for n in names if n not in aside and _has_rows(cursor, n)]
        if occupied and not replace:
            raise _not_empty(occupied)
        connection.commit()
        side = None
        if aside and helper is not None:
            side = _Side(helper, opened, aside, outcome, progress)
        try:
            if side is not None:
                side.start()
            if occupied:
                # Not TRUNCATE … CASCADE, which would empty every table that refers to
                # these (run history, imports, …): what refers to them is done to as
                # its foreign key says, as when Django deletes.
                in_plan = set(names)
                for table in reversed(plan):
                    _delete(cursor, table.model, "TRUE", {}, in_plan)
            # From here checked as each statement ends (and the deletes' checks now): the
            # indexes and keys are altered below, which PostgreSQL refuses while deferred
            # checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            mine = [t for t in plan if t.name not in aside]
            # With a second connection, it reads the files to their end (the tables set
            # aside are last) and so takes the extra files too; this one stops early.
            rebuild = _load_bare(cursor, opened, mine, outcome, progress, files=side is None)
            if relations:
                _translate_groups(cursor, opened, lambda n: n)
                progress("checking relations")
                outcome.skipped = _drop_orphans(cursor, mine, _file_of(opened))
            for sql in rebuild:
                if relations or "FOREIGN KEY" not in sql:
                    cursor.execute(sql)
                    progress(f"  {_short(sql)}")
            _advance_sequences(cursor, mine)
            if side is not None:
                side.finish()  # its tables are ready: commit them, then ours
            connection.commit()
        except (pg_errors.IntegrityError, pg_errors.DataError) as error:
            _abandon(connection, side)
            raise _raise_clearly(error) from None
        except BaseException:
            _abandon(connection, side)
            raise
    return outcome


def _not_empty(occupied: list[str]) -> RestoreError:
    return RestoreError(
        "the database is not empty: "
        + ", ".join(occupied[:6])
        + (" …" if len(occupied) > 6 else "")
        + " hold rows. Restore one account into it with --account ID, or replace "
        "everything in these tables with --replace."
    )


def _load_bare(
    cursor: Any,
    opened: list[container.Opened],
    plan: list[Table],
    outcome: Outcome,
    progress: Progress,
    *,
    files: bool = True,
) -> list[str]:
    """Drop the tables' keys and indexes, empty them, COPY the files' rows in; returns
    the statements that make the keys and indexes again."""
    names = [t.name for t in plan]
    # The indexes are built once at the end: give the sorts room (this transaction only).
    cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    rebuild = _drop_indexes_and_keys(cursor, names)
    # Empty now, and emptied in this transaction: COPY … FREEZE writes the rows frozen
    # and visible to all, so the index builds do not rewrite every page.
    cursor.execute("TRUNCATE " + ", ".join(map(db.quote, names)))
    for item in opened:
        progress(f"restoring {item.path.name}")
        _load(
            cursor,
            item,
            into=lambda n: n,
            outcome=outcome,
            progress=progress,
            freeze=True,
            only=set(names),
            files=files,
        )
    return rebuild


SIDE_SHARE = 0.25  # a table worth a second connection holds at least this of the data


def _set_aside(plan: list[Table], opened: list[container.Opened]) -> list[str]:
    """The big tables that nothing ties to the others by a foreign key, either way."""
    sizes = {t["name"]: int(t["bytes"]) for o in opened for t in o.manifest["tables"]}
    total = sum(sizes.values()) or 1
    return [
        t.name
        for t in plan
        if sizes.get(t.name, 0) >= SIDE_SHARE * total
        and not tables.foreign_keys(t)
        and not any(get_candidate_relations_to_delete(t.model._meta))
    ]


class _Side(threading.Thread):
    """The second connection: loads and indexes its tables in a transaction it keeps
    open until ``finish`` (commit) or ``_abandon`` (rollback)."""

    def __init__(
        self,
        params: dict[str, Any],
        opened: list[container.Opened],
        names: list[str],
        outcome: Outcome,
        progress: Progress,
    ) -> None:
        super().__init__(name="restore-side", daemon=True)
        self.connection = db.connect(params)
        self.opened = opened
        self.plan = tables.ordered(names)
        self.outcome = outcome
        self.progress = lambda message: progress(f"{message} (second connection)")
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.connection.cursor() as cursor:
                occupied = [t.name for t in self.plan if _has_rows(cursor, t.name)]
                if occupied:
                    raise _not_empty(occupied)
                rebuild = _load_bare(cursor, self.opened, self.plan, self.outcome, self.progress)
                for sql in rebuild:
                    cursor.execute(sql)
                    self.progress(f"  {_short(sql)}")
                _advance_sequences(cursor, self.plan)
        except BaseException as error:  # told to the main connection, which stops
            self.error = error

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error
        self.connection.commit()
        self.connection.close()


def _abandon(connection: Any, side: _Side | None) -> None:
    connection.rollback()
    if side is None:
        return
    if side.is_alive():
        side.connection.cancel()
        side.join()
    if not side.connection.closed:
        side.connection.rollback()
        side.connection.close()


USER_GROUPS = "accounts_user_groups"


def _translate_groups(
    cursor: Any, opened: list[container.Opened], name: Callable[[str], str]
) -> None:
    """Memberships name their group by id, which differs between databases: each
    restored membership is pointed at the group of the same name (made if missing)."""
    groups = [g for o in opened for g in o.manifest.get("groups", [])]
    if not groups or not any(
        t["name"] == USER_GROUPS for o in opened for t in o.manifest["tables"]
    ):
        return
    cursor.execute(
        "INSERT INTO auth_group (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING",
        [[group_name for _, group_name in groups]],
    )
    cursor.execute(
        f"UPDATE {db.quote(name(USER_GROUPS))} m SET group_id = g.id "  # nosec B608  # identifiers quoted, clauses our own
        "FROM unnest(%s::int[], %s::text[]) AS b(id, name) JOIN auth_group g USING (name) "
        "WHERE m.group_id = b.id",
        [[group_id for group_id, _ in groups], [group_name for _, group_name in groups]],
    )


def _has_rows(cursor: Any, table: str) -> bool:
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {db.quote(table)})")  # nosec B608  # identifiers quoted, clauses our own
    return bool(cursor.fetchone()[0])


def _drop_indexes_and_keys(cursor: Any, names: list[str]) -> list[str]:
    """Drop the tables' keys (primary, unique, and foreign keys from or to them) and
    plain indexes, as pg_restore does: a table loaded bare and indexed once is several
    times faster than one whose indexes grow row by row. Returns the statements that
    make them again: keys, then indexes, then foreign keys."""
    cursor.execute(
        """
        SELECT c.conname, c.conrelid::regclass::text, c.contype, pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE (c.contype IN ('p', 'u') AND c.conrelid = ANY(%(tables)s::regclass[]))
           OR (c.contype = 'f' AND (c.conrelid = ANY(%(tables)s::regclass[])
                                    OR c.confrelid = ANY(%(tables)s::regclass[])))
        ORDER BY c.contype = 'f' DESC, c.conname
        """,
        {"tables": names},
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%(tables)s::regclass[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        {"tables": names},
    )
    indexes = cursor.fetchall()
    make_keys: list[str] = []
    make_foreign: list[str] = []
    for name, table, kind, definition in constraints:  # foreign keys first
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {db.quote(name)}")
        statement = f"ALTER TABLE {table} ADD CONSTRAINT {db.quote(name)} {definition}"
        (make_foreign if kind == "f" else make_keys).append(statement)
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    return make_keys + [definition for _, definition in indexes] + make_foreign


def _short(sql: str) -> str:
    """``members_member: member_list_email`` from the statement that made it."""
    words = sql.split()
    if words[:2] == ["ALTER", "TABLE"]:
        return f"{words[2]}: {words[5].strip(chr(34))}"
    on = words.index("ON") if "ON" in words else 0
    return f"{words[on + 1].removeprefix('public.')}: {words[on - 1]}"


def _file_of(opened: list[container.Opened]) -> dict[str, str]:
    return {t["name"]: str(o.path) for o in opened for t in o.manifest["tables"]}


def _drop_orphans(cursor: Any, plan: list[Table], file_of: dict[str, str]) -> dict[str, int]:
    """Rows whose parent is not there: dropped, or the optional reference emptied.
    Parents first, so a dropped parent's children are seen after it. A parent from the
    same file needs no look: one snapshot of a database that enforces its keys."""
    skipped: dict[str, int] = {}
    dropped: set[str] = set()
    for table in plan:
        for fk in tables.foreign_keys(table):
            same = file_of.get(fk.parent) == file_of.get(table.name)
            if same and fk.parent not in dropped:
                continue
            missing = (
                f"{db.quote(fk.column)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "  # nosec B608  # identifiers quoted, clauses our own
                f"{db.quote(fk.parent)} p WHERE p.{db.quote(fk.parent_column)} = "
                f"{db.quote(table.name)}.{db.quote(fk.column)})"
            )
            if fk.nullable:
                cursor.execute(
                    f"UPDATE {db.quote(table.name)} SET {db.quote(fk.column)} = NULL "  # nosec B608  # identifiers quoted, clauses our own
                    f"WHERE {missing}"
                )
            else:
                cursor.execute(f"DELETE FROM {db.quote(table.name)} WHERE {missing}")  # nosec B608  # identifiers quoted, clauses our own
            if cursor.rowcount:
                key = f"{table.name}.{fk.column}"
                skipped[key] = skipped.get(key, 0) + cursor.rowcount
                if not fk.nullable:
                    dropped.add(table.name)
    return skipped


def _advance_sequences(cursor: Any, plan: list[Table]) -> None:
    """Ids made after the restore follow the restored ones."""
    for table in plan:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table.name, table.pk])
        sequence = cursor.fetchone()[0]
        if sequence is None:
            continue
        cursor.execute(
            f"SELECT setval(%s, m) FROM (SELECT max({db.quote(table.pk)}) AS m "  # nosec B608  # identifiers quoted, clauses our own
            f"FROM {db.quote(table.name)}) t "
            f"WHERE m IS NOT NULL AND m > (SELECT last_value FROM {sequence})",
            [sequence],
        )


# ------------------------------------------------------------------------- one account


def _stage(name: str) -> str:
    return f"restore_{name}"


def restore_account(
    connection: Any,
    opened: list[container.Opened],
    *,
    account_id: int,
    progress: Progress = _quiet,
) -> Outcome:
    """Restore one account's rows from the files into a database holding others."""
    plan = planned(opened)
    in_plan = {t.name for t in plan}
    outcome = Outcome()
    params = {"account": account_id}

    def source(name: str) -> str:
        return _stage(name) if name in in_plan else name

    with connection.cursor() as cursor:
        check_schema(cursor, opened)
        connection.commit()
        try:
            for table in plan:
                cursor.execute(
                    f"CREATE TEMP TABLE {db.quote(_stage(table.name))} "
                    f"(LIKE {db.quote(table.name)}) ON COMMIT DROP"
                )
            for item in opened:
                progress(f"reading {item.path.name}")
                _load(cursor, item, into=_stage, outcome=outcome, progress=progress)
            _translate_groups(cursor, opened, _stage)
            for table in plan:  # parents first: children look through the cut parents
                condition = tables.account_condition(table, source)
                cursor.execute(
                    f"DELETE FROM {db.quote(_stage(table.name))} WHERE ({condition}) IS NOT TRUE",  # nosec B608  # identifiers quoted, clauses our own
                    params,
                )
                cursor.execute(f"ANALYZE {db.quote(_stage(table.name))}")
            for entry in outcome.tables:  # what is restored is the account's rows
                cursor.execute(f"SELECT count(*) FROM {db.quote(_stage(entry['name']))}")  # nosec B608  # identifiers quoted, clauses our own
                entry["read"], entry["rows"] = entry["rows"], _count(cursor)
            if "accounts_account" in in_plan:
                cursor.execute(f"SELECT count(*) FROM {_stage('accounts_account')}")  # nosec B608  # identifiers quoted, clauses our own
                if not cursor.fetchone()[0]:
                    raise RestoreError(f"account {account_id} is not in this backup")
            elif not _exists(cursor, "accounts_account", "id", account_id):
                raise RestoreError(
                    f"account {account_id} is not in the database: restore it with its "
                    "three-hourly backup"
                )
            _refuse_collisions(cursor, plan, params)
            progress("removing the account's rows made after the backup")
            for table in reversed(plan):
                where = (
                    f"({tables.account_condition(table, lambda n: n)}) AND "  # nosec B608  # identifiers quoted, clauses our own
                    f"{db.quote(table.pk)} NOT IN "
                    f"(SELECT {db.quote(table.pk)} FROM {db.quote(_stage(table.name))})"
                )
                count = _delete(cursor, table.model, where, params, in_plan)
                if count:
                    outcome.deleted[table.name] = count
            progress("writing the account's rows")
            for table in plan:
                skipped = _upsert(cursor, table, in_plan)
                if skipped:
                    outcome.skipped[table.name] = skipped
            _advance_sequences(cursor, plan)
            connection.commit()
        except (pg_errors.IntegrityError, pg_errors.DataError) as error:
            connection.rollback()
            raise _raise_clearly(error) from None
        except BaseException:
            connection.rollback()
            raise
    return outcome


def _count(cursor: Any) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _exists(cursor: Any, table: str, column: str, value: object) -> bool:
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {db.quote(table)} WHERE {db.quote(column)} = %s)",  # nosec B608  # identifiers quoted, clauses our own
        [value],
    )
    return bool(cursor.fetchone()[0])


def _refuse_collisions(cursor: Any, plan: list[Table], params: dict[str, Any]) -> None:
    """The account's ids must be free, the account's own, or those of rows whose parent
    is gone (left over, they belong to nobody and are overwritten)."""
    for table in plan:
        condition = tables.other_account_condition(table)
        pk = db.quote(table.pk)
        cursor.execute(
            f"SELECT {pk} FROM {db.quote(table.name)} "  # nosec B608  # identifiers quoted, clauses our own
            f"WHERE {pk} IN (SELECT {pk} FROM {db.quote(_stage(table.name))}) "
            f"AND ({condition}) LIMIT 5",
            params,
        )
        taken = [str(row[0]) for row in cursor.fetchall()]
        if taken:
            raise RestoreError(
                f"{table.name}: the ids {', '.join(taken)} of the account's rows are used by "
                "other rows in this database; nothing was changed. Restore the whole backup "
                "into an empty database instead."
            )


def _delete(
    cursor: Any,
    model: type[models.Model],
    where: str,
    params: dict[str, Any],
    in_plan: set[str],
) -> int:
    """DELETE rows of ``model`` matching ``where``, first doing to the rows that refer to
    them (outside the restore) what their foreign keys say: the database's own keys are
    not cascading, Django does that, and so do we here, in SQL."""
    table = db.quote(model._meta.db_table)
    pk = db.quote(model._meta.pk.column)
    doomed = f"SELECT {pk} FROM {table} WHERE {where}"  # nosec B608  # identifiers quoted, clauses our own
    relation: Any
    for relation in get_candidate_relations_to_delete(model._meta):
        child: Any = relation.related_model
        child_table = child._meta.db_table
        if child_table in in_plan:
            continue  # restored too: its own step deals with its rows
        column = db.quote(relation.field.column)
        target = db.quote(relation.field.target_field.column)
        refers = (
            f"{column} IN (SELECT {target} FROM {table} WHERE {where})"  # nosec B608  # identifiers quoted, clauses our own
            if target != pk
            else f"{column} IN ({doomed})"
        )
        on_delete = relation.field.remote_field.on_delete
        if on_delete is models.CASCADE:
            _delete(cursor, child, refers, params, in_plan)
        elif on_delete is models.SET_NULL:
            cursor.execute(
                f"UPDATE {db.quote(child_table)} SET {column} = NULL WHERE {refers}",  # nosec B608  # identifiers quoted, clauses our own
                params,
            )
        elif on_delete in (models.PROTECT, models.RESTRICT):
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {db.quote(child_table)} WHERE {refers})",  # nosec B608  # identifiers quoted, clauses our own
                params,
            )
            if cursor.fetchone()[0]:
                raise RestoreError(
                    f"rows of {child_table} depend on rows of {model._meta.db_table} that the "
                    "backup does not have; nothing was changed"
                )
    cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # nosec B608  # identifiers quoted, clauses our own
    return int(cursor.rowcount)


def _upsert(cursor: Any, table: Table, in_plan: set[str]) -> int:
    """Write the staged rows (insert, or update the row with the same id); a row whose
    required parent is missing is skipped and counted, an optional one emptied."""
    cursor.execute(f"SELECT count(*) FROM {db.quote(_stage(table.name))}")  # nosec B608  # identifiers quoted, clauses our own
    staged = int(cursor.fetchone()[0])
    if not staged:
        return 0
    cols = [name for name, _ in db.columns(cursor, table.name)]
    keys = {fk.column: fk for fk in tables.foreign_keys(table)}
    select, required = [], []
    for name in cols:
        fk = keys.get(name)
        if fk is None:
            select.append(f"s.{db.quote(name)}")
            continue
        exists = (
            f"EXISTS (SELECT 1 FROM {db.quote(fk.parent)} p "  # nosec B608  # identifiers quoted, clauses our own
            f"WHERE p.{db.quote(fk.parent_column)} = s.{db.quote(name)})"
        )
        if fk.parent == table.name:  # a reference within the table: also the staged rows
            exists += (
                f" OR EXISTS (SELECT 1 FROM {db.quote(_stage(fk.parent))} p "  # nosec B608  # identifiers quoted, clauses our own
                f"WHERE p.{db.quote(fk.parent_column)} = s.{db.quote(name)})"
            )
        if fk.nullable:
            select.append(f"CASE WHEN {exists} THEN s.{db.quote(name)} END")
        else:
            select.append(f"s.{db.quote(name)}")
            required.append(f"({exists})")
    updates = ", ".join(f"{db.quote(c)} = EXCLUDED.{db.quote(c)}" for c in cols if c != table.pk)
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"  # nosec B608  # identifiers quoted, clauses our own
    cursor.execute(
        f"INSERT INTO {db.quote(table.name)} ({', '.join(map(db.quote, cols))}) "  # nosec B608  # identifiers quoted, clauses our own
        f"SELECT {', '.join(select)} FROM {db.quote(_stage(table.name))} s "
        f"WHERE {' AND '.join(required) or 'TRUE'} "
        f"ON CONFLICT ({db.quote(table.pk)}) {conflict}"
    )
    return staged - int(cursor.rowcount)


# ------------------------------------------------------------------------------ drills


def compare(connection: Any, opened: container.Opened) -> list[dict[str, Any]]:
    """Dump each restored table again and compare its row count and checksum with the
    manifest: what the database now holds is what the backup said it held."""
    from backups.dump import copy_out

    results = []
    with connection.cursor() as cursor:
        cursor.execute("SET synchronize_seqscans = off")  # the order the rows went in
        for entry in opened.manifest["tables"]:
            sql = (
                f"COPY {db.quote(entry['name'])} ({db.column_list(entry['columns'])}) "
                "TO STDOUT (FORMAT binary)"
            )
            digest, _ = copy_out(cursor, sql, lambda block: None)
            results.append(
                {
                    "name": entry["name"],
                    "rows": cursor.rowcount,
                    "expected_rows": entry["rows"],
                    "checksum_ok": digest == entry["sha256"],
                    "ok": digest == entry["sha256"] and cursor.rowcount == entry["rows"],
                }
            )
        connection.commit()
    return results
