"""Every write of the backups app: making backups, restoring, drills, retention, checks.

Each run is recorded before it starts and finished by a conditional update, so a run
that died stays visibly "running" and a task delivered twice finds nothing to redo.
Failures are recorded with a message for an operator and alert the technicians
(backups/alerts.py: the monitoring channel, mail and webhook); ``alerted_at`` is set only
when someone was told.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import psycopg2
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction
from django.db import connection as django_connection
from django.utils import timezone

from backups import alerts, container, db, dump, restore, storage
from backups.models import BackupFile, BackupKind, BackupRun, RestoreKind, RestoreRun, RunStatus
from backups.restore import RestoreError
from backups.storage import StorageError
from backups.tables import SETS
from heyloyalty import keys

Progress = Callable[[str], None]

PERIODS = {BackupKind.HOURLY: timedelta(hours=1), BackupKind.THREE_HOURLY: timedelta(hours=3)}
# pg_try_advisory_lock keys: one backup of a kind at a time.
LOCKS = {BackupKind.HOURLY: 0x6261636B01, BackupKind.THREE_HOURLY: 0x6261636B03}
DRILL_EVERY = timedelta(days=1)
# In alerts and command output, which are in English whatever language is active.
NAMES: dict[str, str] = {BackupKind.HOURLY: "Hourly", BackupKind.THREE_HOURLY: "Three-hourly"}


def _quiet(message: str) -> None:
    pass


class BackupError(Exception):
    """A backup could not be made; the message says why."""


# ------------------------------------------------------------------------- backups


class _HashingFile:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


def _finish(model: Any, run_id: int, **values: Any) -> bool:
    """Move a running run to its end state; False when it had ended already."""
    finished = timezone.now()
    started = model.objects.values_list("started_at", flat=True).get(pk=run_id)
    return bool(
        model.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            finished_at=finished, duration=(finished - started).total_seconds(), **values
        )
    )


def backup_create(*, kind: str, progress: Progress = _quiet) -> BackupRun:
    """Make one backup of ``kind`` now (see backups/dump.py); then apply retention."""
    kind = BackupKind(kind)
    run = BackupRun.objects.create(kind=kind)
    progress(f"{NAMES[kind]} backup (run {run.pk})")
    try:
        backup_file = _make_backup(kind, progress)
    except Exception as error:
        _fail_backup(run, _message(error))
        run.refresh_from_db()
        return run
    _finish(
        BackupRun,
        run.pk,
        status=RunStatus.SUCCEEDED,
        file=backup_file,
        size=backup_file.size,
        rows=backup_file.rows,
    )
    progress(f"wrote {backup_file.name}: {backup_file.rows:,} rows, {backup_file.size:,} bytes")
    removed = retention_apply()
    if removed:
        progress(f"retention removed {len(removed)} older backup(s)")
    run.refresh_from_db()
    return run


def _make_backup(kind: BackupKind, progress: Progress) -> BackupFile:
    key = keys.backup_keys()[0]
    params = db.params_for_alias()
    connection = db.connect(params)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCKS[kind]])
            if not _one(cursor):
                raise BackupError(f"another {NAMES[kind].lower()} backup is still running")
            cursor.execute(
                "SELECT coalesce(sum(pg_table_size(t::regclass)), 0) FROM unnest(%s::text[]) t",
                [[t.name for t in SETS[kind]]],
            )
            estimate = int(_one(cursor)) // 2
        connection.commit()
        storage.ensure_room(estimate)
        now = timezone.now()
        name = f"heyloyalty-{kind.value}-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}.hlbk"
        with storage.atomic_file(name) as out:
            hashing = _HashingFile(out)
            writer = container.Writer(
                hashing,  # type: ignore[arg-type]
                key=key,
                kind=kind.value,
                created_at=now.isoformat(),
            )
            manifest = dump.dump(
                connection=connection,
                writer=writer,
                kind=kind.value,
                extra_dir=storage.backup_dir(),
                progress=progress,
            )
    finally:
        connection.close()
    remote = ""
    if storage.remote_enabled():
        progress(f"uploading to {storage.remote_url(name)}")
        try:
            remote = storage.upload(name)
        except StorageError:
            storage.remove_local(name)
            raise
    return BackupFile.objects.create(
        name=name,
        kind=kind,
        created_at=datetime.fromisoformat(manifest["created_at"]),
        size=hashing.size,
        sha256=hashing.digest.hexdigest(),
        key_id=key.id,
        rows=sum(int(t["rows"]) for t in manifest["tables"]),
        manifest=manifest,
        remote=remote,
    )


def _message(error: BaseException) -> str:
    """An error as one readable line or a few: a database error without its traceback."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, DatabaseError | psycopg2.Error) and not isinstance(error, RestoreError):
        return f"database error: {' '.join(text.splitlines()[:3])}"
    return text


def _one(cursor: Any) -> Any:
    row = cursor.fetchone()
    return row[0] if row else None


def _fail_backup(run: BackupRun, error: str) -> None:
    if not _finish(BackupRun, run.pk, status=RunStatus.FAILED, error=error):
        return
    sent = alerts.alert(
        subject=f"{NAMES[run.kind]} backup failed",
        text=(
            f"The {NAMES[run.kind].lower()} backup started at "
            f"{timezone.localtime(run.started_at):%Y-%m-%d %H:%M:%S %Z} failed:\n\n{error}\n\n"
            "No file was kept from this run. "
            "The run is in the admin panel under Backups."
        ),
    )
    if sent:
        BackupRun.objects.filter(pk=run.pk).update(alerted_at=timezone.now())


# ------------------------------------------------------------------------ retention


def retention_apply(*, now: datetime | None = None) -> list[str]:
    """Delete the files retention no longer keeps; returns their names.

    Kept: every hourly backup for BACKUP_KEEP_HOURLY_HOURS, every three-hourly one for
    BACKUP_KEEP_THREE_HOURLY_DAYS, the first of each kind of each day for
    BACKUP_KEEP_DAILY_DAYS, and always the newest of each kind.
    """
    now = now or timezone.now()
    windows = {
        BackupKind.HOURLY: timedelta(hours=settings.BACKUP_KEEP_HOURLY_HOURS),
        BackupKind.THREE_HOURLY: timedelta(days=settings.BACKUP_KEEP_THREE_HOURLY_DAYS),
    }
    daily = timedelta(days=settings.BACKUP_KEEP_DAILY_DAYS)
    kept_days: set[tuple[str, object]] = set()
    newest: set[str] = set()
    removed = []
    for item in BackupFile.objects.filter(deleted_at__isnull=True).order_by("created_at", "id"):
        day = (item.kind, timezone.localdate(item.created_at))
        age = now - item.created_at
        first_of_day = day not in kept_days
        kept_days.add(day)
        if age <= windows[BackupKind(item.kind)] or (first_of_day and age <= daily):
            continue
        removed.append(item)
    for kind in BackupKind:
        last = BackupFile.objects.filter(kind=kind, deleted_at__isnull=True).first()
        if last is not None:
            newest.add(last.name)
    names = []
    for item in removed:
        if item.name in newest:
            continue
        if BackupFile.objects.filter(pk=item.pk, deleted_at__isnull=True).update(deleted_at=now):
            storage.remove_local(item.name)
            if item.remote and storage.remote_enabled():
                try:
                    storage.remove_remote(item.name)
                except StorageError as error:
                    alerts.alert(
                        subject="Backup retention could not delete a file", text=str(error)
                    )
            names.append(item.name)
    return names


# ---------------------------------------------------------------------------- drills


def _file_path(item: BackupFile) -> Path:
    path = storage.local_path(item.name)
    if not path.is_file() and item.remote and storage.remote_enabled():
        return storage.download(item.name)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def _drill_server() -> dict[str, Any]:
    if settings.BACKUP_DRILL_DATABASE_URL:
        return db.params_for_url(settings.BACKUP_DRILL_DATABASE_URL)
    return db.params_for_alias()


def backup_verify(
    *, item: BackupFile | None = None, path: Path | None = None, progress: Progress = _quiet
) -> RestoreRun:
    """A restore drill: restore one file into a scratch database made for it, migrated,
    and compare every table's row count and checksum with the manifest."""
    if item is None and path is not None:
        item = BackupFile.objects.filter(name=path.name).first()
    run = RestoreRun.objects.create(
        kind=RestoreKind.DRILL,
        file=item,
        file_names=[path.name if path else item.name if item else ""],
        target="scratch database",
    )
    try:
        result = _drill(item, path, progress)
    except Exception as error:
        _fail_restore(run, _message(error), item=item)
        run.refresh_from_db()
        return run
    ok = all(t["ok"] for t in result["tables"])
    status = RunStatus.SUCCEEDED if ok else RunStatus.FAILED
    differs = (
        ""
        if ok
        else "restored data differs from the manifest: "
        + ", ".join(t["name"] for t in result["tables"] if not t["ok"])
    )
    _finish(
        RestoreRun,
        run.pk,
        status=status,
        result=result,
        rows=sum(int(t["rows"]) for t in result["tables"]),
        size=result.get("size"),
        error=differs,
    )
    if item is not None:
        BackupFile.objects.filter(pk=item.pk).update(verified_at=timezone.now(), verified_ok=ok)
    if not ok:
        _alert_restore(run.pk, "Restore drill failed", differs, item)
    run.refresh_from_db()
    return run


def _drill(item: BackupFile | None, path: Path | None, progress: Progress) -> dict[str, Any]:
    if path is None:
        if item is None:
            raise RestoreError("no backup to verify yet")
        path = _file_path(item)
    progress(f"drill: {path.name}")
    opened = restore.open_files([path], keys.backup_keys())
    if item is not None and (
        file_sha256(path) != item.sha256
        or opened[0].manifest["data_sha256"] != item.manifest.get("data_sha256")
    ):
        raise RestoreError(f"{path.name} does not match the backup recorded under that name")
    with db.scratch_database(_drill_server(), prefix="heyloyalty_drill") as scratch:
        progress(f"  scratch database {scratch['dbname']}: migrating")
        db.migrate(scratch)
        connection = db.connect(scratch)
        try:
            restore.restore_database(
                connection, opened, relations=False, helper=scratch, progress=progress
            )
            progress("  comparing with the manifest")
            tables = restore.compare(connection, opened[0])
        finally:
            connection.close()
    return {"tables": tables, "size": path.stat().st_size, "file": path.name}


def drill_due() -> list[RestoreRun]:
    """The daily drill: the newest file of each kind."""
    runs = []
    for kind in BackupKind:
        item = BackupFile.objects.filter(kind=kind, deleted_at__isnull=True).first()
        if item is not None:
            runs.append(backup_verify(item=item))
    return runs


def _fail_restore(run: RestoreRun, error: str, *, item: BackupFile | None) -> None:
    if not _finish(RestoreRun, run.pk, status=RunStatus.FAILED, error=error):
        return
    if run.kind == RestoreKind.DRILL:
        if item is not None:
            BackupFile.objects.filter(pk=item.pk).update(
                verified_at=timezone.now(), verified_ok=False
            )
        _alert_restore(run.pk, "Restore drill failed", error, item)


def _alert_restore(run_id: int, subject: str, error: str, item: BackupFile | None) -> None:
    name = item.name if item else "a backup file"
    sent = alerts.alert(
        subject=f"{subject}: {name}",
        text=(
            f"The restore drill of {name} failed:\n\n{error}\n\nThis backup cannot be "
            "trusted. Check the disk and the file, and make a new backup now "
            "(manage.py backup_create)."
        ),
    )
    if sent:
        RestoreRun.objects.filter(pk=run_id).update(alerted_at=timezone.now())


# --------------------------------------------------------------------------- restores


def backup_restore(
    *,
    paths: list[Path],
    database_url: str = "",
    account_id: int | None = None,
    replace: bool = False,
    extract_dir: Path | None = None,
    actor: Any = None,
    progress: Progress = _quiet,
) -> RestoreRun:
    """Restore files into the app's database or the one at ``database_url``: the whole
    database (into an empty one, or ``replace``), or one account (``account_id``).

    Raises RestoreError (recorded on the run) when it stops; nothing is changed then.
    """
    params = db.params_for_url(database_url) if database_url else db.params_for_alias()
    run = RestoreRun.objects.create(
        kind=RestoreKind.RESTORE,
        file_names=[p.name for p in paths],
        target=db.describe(params),
        account_id=account_id,
        actor=actor,
    )
    try:
        outcome = _restore(
            run, paths, params, bool(database_url), account_id, replace, actor, progress
        )
    except (
        RestoreError,
        StorageError,
        ImproperlyConfigured,
        RuntimeError,
        DatabaseError,
        psycopg2.Error,
    ) as error:
        _finish(RestoreRun, run.pk, status=RunStatus.FAILED, error=_message(error))
        raise RestoreError(_message(error)) from None
    if extract_dir is not None:
        extract_dir.mkdir(parents=True, exist_ok=True)
        for name, data in outcome.files.items():
            (extract_dir / name).write_bytes(data)
    _finish(
        RestoreRun,
        run.pk,
        status=RunStatus.SUCCEEDED,
        rows=outcome.rows,
        size=sum(p.stat().st_size for p in paths),
        result=outcome.as_dict(),
    )
    run.refresh_from_db()
    return run


def _restore(
    run: RestoreRun,
    paths: list[Path],
    params: dict[str, Any],
    elsewhere: bool,
    account_id: int | None,
    replace: bool,
    actor: Any,
    progress: Progress,
) -> restore.Outcome:
    """1. Open and check every file (key, checksums). 2. An empty database is migrated
    first. 3. The restore runs in one transaction, and the audit event is written in the
    app's database in the same transaction (another database: committed together, the
    event last)."""
    from audit.services import record

    opened = restore.open_files(paths, keys.backup_keys())
    progress(f"{len(opened)} file(s) checked: key, manifest and checksums match")

    def audit(outcome: restore.Outcome) -> None:
        record(
            "backup.restored",
            actor=actor,
            account=account_id,
            target_type="backups.restorerun",
            target_id=str(run.pk),
            target_repr=", ".join(p.name for p in paths),
            extra={
                "files": [p.name for p in paths],
                "into": run.target,
                "account": account_id,
                "replace": replace,
                "rows": outcome.rows,
                "skipped": outcome.skipped,
            },
        )

    def into(connection: Any, helper: dict[str, Any] | None = None) -> restore.Outcome:
        if account_id is not None:
            return restore.restore_account(
                connection, opened, account_id=account_id, progress=progress
            )
        return restore.restore_database(
            connection, opened, replace=replace, helper=helper, progress=progress
        )

    if not elsewhere:
        with transaction.atomic():
            django_connection.ensure_connection()
            outcome = into(_Shared(django_connection.connection))
            audit(outcome)
        return outcome
    _migrate_if_new(params, progress)
    connection = db.connect(params)
    try:
        with transaction.atomic():
            outcome = into(_Deferred(connection), helper=params)
            audit(outcome)
            connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
    return outcome


class _Shared:
    """Django's own connection inside transaction.atomic: commits are Django's to make,
    a rollback becomes an exception that unwinds the atomic block."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def cursor(self) -> Any:
        return self.raw.cursor()

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


class _Deferred(_Shared):
    """Another database: its commit waits until the audit event is written."""

    def rollback(self) -> None:
        self.raw.rollback()


def _migrate_if_new(params: dict[str, Any], progress: Progress) -> None:
    connection = db.connect(params)
    try:
        with connection.cursor() as cursor:
            fresh = not db.table_exists(cursor, "django_migrations")
    finally:
        connection.close()
    if fresh:
        progress(f"{db.describe(params)} is empty: migrating it first")
        db.migrate(params)


# ---------------------------------------------------------------------- missed backups


def backups_check(*, now: datetime | None = None) -> list[str]:
    """Missed backups and overdue drills: recorded and alerted once per missed slot."""
    now = now or timezone.now()
    grace = timedelta(minutes=settings.BACKUP_GRACE_MINUTES)
    problems = []
    for kind, period in PERIODS.items():
        runs = BackupRun.objects.filter(kind=kind)
        last_good = runs.filter(status=RunStatus.SUCCEEDED).first()
        since = last_good.started_at if last_good else None
        if since is None:
            first = runs.order_by("started_at").first()
            since = first.started_at if first else None
        if since is None or now - since <= period + grace:
            continue
        last_missed = runs.filter(status=RunStatus.MISSED, started_at__gt=since).first()
        if last_missed is not None and now - last_missed.started_at < period:
            continue
        text = (
            f"No {NAMES[kind].lower()} backup has succeeded since "
            f"{timezone.localtime(since):%Y-%m-%d %H:%M %Z}. Is Celery beat running, and "
            "the worker? The runs are in the admin panel under Backups."
        )
        missed = BackupRun.objects.create(
            kind=kind, status=RunStatus.MISSED, started_at=now, finished_at=now, error=text
        )
        if alerts.alert(subject=f"{NAMES[kind]} backup missed", text=text):
            BackupRun.objects.filter(pk=missed.pk).update(alerted_at=now)
        problems.append(text)
    problem = _drill_overdue(now)
    if problem:
        problems.append(problem)
    return problems


def _drill_overdue(now: datetime) -> str | None:
    """No drill has passed in two days while there are backups to prove: recorded as a
    missed drill and alerted, once a day."""
    drills = RestoreRun.objects.filter(kind=RestoreKind.DRILL)
    last_good = drills.filter(status=RunStatus.SUCCEEDED).first()
    oldest = BackupFile.objects.filter(deleted_at__isnull=True).order_by("created_at").first()
    since = last_good.started_at if last_good else oldest.created_at if oldest else None
    if since is None or now - since <= 2 * DRILL_EVERY:
        return None
    if drills.filter(status=RunStatus.MISSED, started_at__gt=now - DRILL_EVERY).exists():
        return None
    text = (
        f"No restore drill has passed since {timezone.localtime(since):%Y-%m-%d %H:%M %Z}: "
        "the backups are not proven. Run `manage.py backup_verify` and check the beat job "
        "backups.drill."
    )
    missed = RestoreRun.objects.create(
        kind=RestoreKind.DRILL, status=RunStatus.MISSED, finished_at=now, error=text
    )
    if alerts.alert(subject="Restore drill overdue", text=text):
        RestoreRun.objects.filter(pk=missed.pk).update(alerted_at=now)
    return text


def keys_remind(*, on: Any = None) -> list[keys.KeyAge]:
    """A reminder to technicians when a key in use is older than KEY_ROTATION_DAYS."""
    due = keys.overdue(on=on)
    if due:
        lines = [
            f"- {row.kind} key {row.id}: "
            + (f"{row.age_days} days old" if row.age_days is not None else "age unknown")
            for row in due
        ]
        alerts.alert(
            subject="System keys due for rotation",
            text=(
                f"These keys are older than {keys.rotation_days()} days (or their creation "
                "date is unknown):\n\n"
                + "\n".join(lines)
                + "\n\nRotate each with `manage.py keys_rotate --kind KIND` (README, "
                '"Backups and keys").'
            ),
        )
    return due
