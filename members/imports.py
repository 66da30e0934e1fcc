"""CSV imports: streamed, validated row by row, bulk-loaded, merged in one statement.

1. ``import_create`` stores the upload (streamed to IMPORT_DIR), checks the options and
   queues the job after commit.
2. ``import_run`` (the Celery task calls it) claims the job, reads the file with
   ``members.csvsource`` one row at a time, cleans each value with the same rules as
   the API, and COPYs good rows in batches into an UNLOGGED staging table (on a second
   thread, while the next batch is cleaned); bad rows go to the error report with their
   row number. Progress is committed after every batch.
3. One transaction then de-duplicates the file (the last row for a key wins), updates
   the members that match, inserts the new ones, and marks the job done. Until then the
   list is untouched, so a worker that dies loses nothing: the job is claimed again and
   starts over.

An import never makes an unsubscribed, bounced or complained member active again unless
its options say ``resubscribe``. With ``trigger_optin`` on a double opt-in list, the new
members are unconfirmed, and once they are committed a task mails each its confirmation
(``members.optin.import_optins_send``, in batches).
"""

# The SQL below interpolates only identifiers we make (the staging table's name from the
# job id, a key column that is "email" or "mobile"); every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import csv
import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from members.csvsource import CsvError, open_csv
from members.fields import FieldValueError, clean_value, text_cleaner
from members.models import (
    SUPPRESSED,
    Duplicates,
    Field,
    FieldFormat,
    HandleExisting,
    Import,
    ImportStatus,
    List,
    MemberStatus,
)
from members.schema import ListSchema
from members.services import MemberError
from members.webhook_delivery import webhooks_after_import

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000
KEPT_ERRORS = 200  # in the Import row; the report file has them all
STALE_AFTER = timedelta(minutes=10)
KEY_FIELDS = ("email", "mobile")

# PHP date() letters the Heyloyalty import's date_format uses, as strptime directives.
_PHP_DATE = {
    "Y": "%Y",
    "y": "%y",
    "m": "%m",
    "n": "%m",
    "d": "%d",
    "j": "%d",
    "H": "%H",
    "G": "%H",
    "i": "%M",
    "s": "%S",
}


@dataclass
class ImportOptions:
    fields_selected: list[str] | None = None  # the field of each column; "" skips it
    duplicate_field: str = "email"
    handle_existing: str = HandleExisting.UPDATE
    delimiter: str | None = None
    has_header: bool | None = None
    date_format: str | None = None
    encoding: str | None = None
    trigger_optin: bool = False
    trigger_autoresponder: bool = False
    empty_field: bool = False
    resubscribe: bool = False
    send_errors_to: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- create


def import_create(
    *,
    member_list: List,
    upload: Any,
    options: ImportOptions,
    created_by: User | None = None,
    preview: bool = False,
) -> Import:
    """Store the file and queue the job. ``upload`` has ``chunks()`` (a Django upload) or
    ``read()``; it is copied in pieces, never held whole in memory."""
    schema = ListSchema.load(member_list)
    _check_options(schema, options)
    target = _store(upload)
    if target.stat().st_size > settings.IMPORT_MAX_BYTES:
        target.unlink()
        raise MemberError("file", f"the file is larger than {settings.IMPORT_MAX_BYTES} bytes")
    if target.stat().st_size == 0:
        target.unlink()
        raise MemberError("file", "the file is empty")
    job = Import.objects.create(
        list=member_list,
        preview=preview,
        file=str(target),
        file_name=str(getattr(upload, "name", "") or "")[:255],
        options=asdict(options),
        rows_total=_estimate_rows(target),
        created_by=created_by,
    )
    from members.tasks import run_import

    transaction.on_commit(lambda: run_import.delay(job.pk))
    return job


def _check_options(schema: ListSchema, options: ImportOptions) -> None:
    if options.handle_existing not in HandleExisting.values:
        raise MemberError("handle_existing", f"must be one of {', '.join(HandleExisting.values)}")
    if options.duplicate_field not in KEY_FIELDS:
        raise MemberError("duplicate_field", "must be email or mobile")
    for name in options.fields_selected or []:
        if name and name not in schema.fields:
            raise MemberError("fields_selected", f"{name!r} is not a field of this list")
    if options.fields_selected is not None and not any(options.fields_selected):
        raise MemberError("fields_selected", "no column is mapped to a field")
    if options.delimiter is not None and len(options.delimiter) != 1:
        raise MemberError("delimiter", "the delimiter is one character")


def _store(upload: Any) -> Path:
    directory = Path(settings.IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{uuid.uuid4().hex}.csv"
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        if hasattr(upload, "chunks"):
            for chunk in upload.chunks():
                out.write(chunk)
        else:
            while chunk := upload.read(1024 * 1024):
                out.write(chunk)
    partial.rename(target)
    return target


def _estimate_rows(path: Path) -> int:
    """Lines in the file: the progress bar's total until the real count is known."""
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            lines += chunk.count(b"\n")
            last = chunk
    return lines + (0 if last.endswith(b"\n") else 1)


# ------------------------------------------------------------------------------ run


def import_run(*, import_id: int) -> None:
    job = _claim(import_id)
    if job is None:
        return  # done already, or another worker has it
    options = ImportOptions(**job.options)
    stage = f"import_stage_{job.pk}"
    report_path = Path(job.file).with_suffix(".errors.csv")
    try:
        with report_path.open("w", newline="", encoding="utf-8") as report_file:
            report = csv.writer(report_file)
            report.writerow(["row", "error"])
            counts = _load(job, options, stage, report)
            _merge(job, options, stage, counts, report)
    except (CsvError, MemberError, ValueError) as error:
        _fail(job, str(getattr(error, "message", error)))
    except Exception as error:
        log.exception("import %s failed", job.pk)
        _fail(job, f"internal error: {error.__class__.__name__}")
        raise
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{stage}"')
    job.report = str(report_path)
    Import.objects.filter(pk=job.pk).update(report=job.report)
    if options.send_errors_to and job.error_count:
        from members.tasks import mail_import_report

        mail_import_report.delay(job.pk)


def _claim(import_id: int) -> Import | None:
    """Take the job if it is queued, or running with a dead worker (no heartbeat)."""
    moment = timezone.now()
    claimed = (
        Import.objects.filter(pk=import_id)
        .filter(
            Q(status=ImportStatus.QUEUED)
            | Q(status=ImportStatus.RUNNING, heartbeat_at__lt=moment - STALE_AFTER)
        )
        .update(
            status=ImportStatus.RUNNING,
            started_at=moment,
            heartbeat_at=moment,
            rows_done=0,
            error_count=0,
            errors=[],
        )
    )
    return Import.objects.select_related("list").get(pk=import_id) if claimed else None


def _fail(job: Import, message: str) -> None:
    Import.objects.filter(pk=job.pk).update(
        status=ImportStatus.FAILED, failure=message, finished_at=timezone.now()
    )


@dataclass
class Counts:
    rows: int = 0
    good: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0


_DATA, _EMAIL, _MOBILE = range(3)  # where a column's values go


class _Column(NamedTuple):
    role: int
    clean: Callable[[str], Any]
    json_key: str  # '"name":', the start of the value's member in the data JSON


class _Cleaner:
    """Turns one CSV row into (email, mobile, data as JSON) or raises FieldValueError."""

    def __init__(self, schema: ListSchema, columns: list[Field | None], date_format: str | None):
        self.schema = schema
        self.strptime = _strptime_format(date_format) if date_format else None
        self.options = {f.name: schema.option_ids(f.name) for f in columns if f is not None}
        self.by_label = {
            name: {label.strip().lower(): value for value, label in labels.items()}
            for name, labels in schema.options.items()
        }
        # Chosen once per column, not per value: this runs for every cell of the file.
        self.columns = [self._column(f) if f is not None else None for f in columns]

    def _column(self, field: Field) -> _Column:
        role = {"email": _EMAIL, "mobile": _MOBILE}.get(field.name, _DATA)
        return _Column(role, self._cleaner(field), _to_json(field.name) + ":")

    def _cleaner(self, field: Field) -> Callable[[str], Any]:
        options = self.options[field.name]
        fmt = field.format
        if fmt in (FieldFormat.CHOICE, FieldFormat.SHOP, FieldFormat.MULTI) or (
            fmt == FieldFormat.DATE and self.strptime
        ):
            return lambda raw: clean_value(field, self._prepare(field, raw), options)
        return text_cleaner(field, options)  # _prepare leaves these formats' values alone

    def clean(self, values: list[str]) -> tuple[str, str, str]:
        email = mobile = ""
        # Each value's JSON member by field, so a later column of the same field wins as
        # in a dict of values; joined, they are what json.dumps makes of that dict.
        data: dict[str, str] = {}
        for column, raw in zip(self.columns, values, strict=False):
            if column is None or raw == "":
                continue
            role, clean, json_key = column
            value = clean(raw)
            if role == _DATA:
                if value is not None:
                    data[json_key] = json_key + _json_value(value)
            elif role == _EMAIL:
                email = value
            else:
                mobile = value
        if not email and not mobile:
            raise FieldValueError("email", "the row has no email address or mobile number")
        return email, mobile, "{" + ",".join(data.values()) + "}"

    def _prepare(self, field: Field, raw: str) -> Any:
        fmt = field.format
        if fmt == FieldFormat.DATE and self.strptime:
            try:
                return datetime.strptime(raw, self.strptime).date().isoformat()
            except ValueError:
                raise FieldValueError(
                    field.name, f"{raw!r} does not match the date format"
                ) from None
        if fmt in (FieldFormat.CHOICE, FieldFormat.SHOP):
            return self._option(field.name, raw)
        if fmt == FieldFormat.MULTI:
            parts = [p for p in raw.replace(";", ",").replace("|", ",").split(",") if p.strip()]
            return [self._option(field.name, p) for p in parts]
        return raw

    def _option(self, name: str, raw: str) -> Any:
        """Files hold option labels ("Male") as often as ids ("1")."""
        return self.by_label.get(name, {}).get(raw.strip().lower(), raw)


def _strptime_format(php: str) -> str:
    return "".join(_PHP_DATE.get(ch, ch) for ch in php)


def _columns(
    schema: ListSchema, options: ImportOptions, header: list[str] | None, width: int
) -> list[Field | None]:
    if options.fields_selected is not None:
        return [schema.fields.get(name) if name else None for name in options.fields_selected]
    if header:
        by_name = {f.name.lower(): f for f in schema.fields.values()}
        by_label = {f.label.strip().lower(): f for f in schema.fields.values()}
        return [by_name.get(h.strip().lower()) or by_label.get(h.strip().lower()) for h in header]
    if width == 1:
        return [schema.fields["email"]]
    raise MemberError(
        "fields_selected",
        "the file has no header line: say which field each column holds (fields_selected)",
    )


def _load(job: Import, options: ImportOptions, stage: str, report: Any) -> Counts:
    schema = ListSchema.load(job.list)
    with ExitStack() as stack:
        handle = stack.enter_context(Path(job.file).open("rb"))
        source = open_csv(
            handle,
            encoding=options.encoding,
            delimiter=options.delimiter,
            has_header=options.has_header,
        )
        rows = iter(source)
        first = next(rows, None)
        width = len(first.values) if first else 0
        columns = _columns(schema, options, source.header, width)
        if not any(c is not None and c.name in KEY_FIELDS for c in columns):
            raise MemberError("fields_selected", "no column holds the email or the mobile number")
        cleaner = _Cleaner(schema, columns, options.date_format)
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{stage}"')
            cursor.execute(
                f'CREATE UNLOGGED TABLE "{stage}" '
                "(row_no integer, email text, mobile text, data jsonb)"
            )
        counts = Counts()
        all_rows = rows if first is None else _chain(first, rows)
        batch: list[str] = []
        stager = stack.enter_context(_Stager(job, stage))
        for row in all_rows:
            counts.rows += 1
            try:
                if row.error:
                    raise FieldValueError("row", row.error)
                email, mobile, data = cleaner.clean(row.values)
            except FieldValueError as error:
                _error(
                    counts,
                    report,
                    row.number,
                    f"{error.field}: {error.message}" if error.field != "row" else error.message,
                )
                continue
            counts.good += 1
            batch.append(_copy_line(row.number, email, mobile, data))
            if len(batch) >= BATCH_ROWS:
                stager.send(batch, counts)
                batch = []
        stager.send(batch, counts)
        stager.wait()
    return counts


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _error(counts: Counts, report: Any, row: int, message: str) -> None:
    counts.error_count += 1
    report.writerow([row, message])
    if len(counts.errors) < KEPT_ERRORS:
        counts.errors.append({"row": row, "error": message})


# COPY's text format: these characters must be escaped. Almost no value holds one, and
# looking for them is one scan where replacing them is four.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
# Built once: json.dumps with arguments makes a new encoder for every call.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_json_string = json.encoder.encode_basestring  # what _to_json does with a str, in C


def _json_value(value: Any) -> str:
    """``_to_json(value)``, taking a short cut for the text and whole numbers most fields hold."""
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if kind is int:
        return int.__repr__(value)
    return _to_json(value)


def _escape(text: str) -> str:
    if _COPY_SPECIAL.search(text) is None:
        return text
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_line(row: int, email: str, mobile: str, data: str) -> str:
    return f"{row}\t{_escape(email)}\t{_escape(mobile)}\t{_escape(data)}\n"


class _Stager:
    """COPYs batches into the staging table while the next batch is being cleaned.

    Cleaning is Python, on one core; PostgreSQL storing a batch can use the other. So each
    COPY runs on a thread of its own, one batch at a time, over the worker's own database
    connection: the same session and transaction, never used by both threads at once (we
    wait for the batch in flight before the next query). Progress is committed once a batch
    is stored, so the API shows it while we go on.
    """

    def __init__(self, job: Import, stage: str) -> None:
        self.job = job
        self.sql = f'COPY "{stage}" (row_no, email, mobile, data) FROM STDIN'
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{job.pk}")
        self.pending: tuple[Future[None] | None, dict[str, Any]] | None = None

    def __enter__(self) -> _Stager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown()  # on an error too: a COPY in flight ends before we go on

    def send(self, batch: list[str], counts: Counts) -> None:
        """Start storing ``batch`` (once the one before is stored), with the progress so far."""
        self.wait()
        copy = None
        if batch:
            connection.ensure_connection()
            data = "".join(batch).encode()  # here, not on a thread that must win the GIL first
            copy = self.pool.submit(_copy, connection.connection, self.sql, data)
        progress = {
            "rows_done": counts.rows,
            "rows_total": max(self.job.rows_total, counts.rows),
            "error_count": counts.error_count,
            "errors": list(counts.errors),
        }
        self.pending = (copy, progress)

    def wait(self) -> None:
        """Wait for the batch in flight to be stored, then commit its progress."""
        if self.pending is None:
            return
        (copy, progress), self.pending = self.pending, None
        if copy is not None:
            with connection.wrap_database_errors:  # Django's exceptions, as from a cursor
                copy.result()
        Import.objects.filter(pk=self.job.pk).update(**progress, heartbeat_at=timezone.now())


def _copy(raw_connection: Any, sql: str, data: bytes) -> None:
    with raw_connection.cursor() as cursor:
        # In one read: each read on this thread must take the GIL back from the cleaning.
        cursor.copy_expert(sql, io.BytesIO(data), size=len(data) + 1)


def _merge(job: Import, options: ImportOptions, stage: str, counts: Counts, report: Any) -> None:
    """Apply the staged rows to the list in one transaction (or just count, for a preview)."""
    member_list = job.list
    key = options.duplicate_field  # "email" or "mobile": a column on both tables
    policy = member_list.policy
    handle = options.handle_existing
    new_status = (
        MemberStatus.UNCONFIRMED
        if member_list.double_optin and options.trigger_optin
        else MemberStatus.ACTIVE
    )
    suppressed = [str(s) for s in SUPPRESSED]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{stage}" WHERE "{key}" = \'\' RETURNING row_no')  # nosec B608  # our identifiers
        keyless = cursor.fetchall()
        for (row_no,) in keyless:
            _error(counts, report, row_no, f"{key}: empty, and it is the field that finds members")
        # 1. The last row of the file for each key wins; earlier ones are skipped.
        cursor.execute(
            f'''DELETE FROM "{stage}" s USING (
                   SELECT row_no, "{key}" AS k,
                          max(row_no) OVER (PARTITION BY "{key}") AS last_row
                   FROM "{stage}") d
                WHERE s.row_no = d.row_no AND d.row_no <> d.last_row
                RETURNING s.row_no, d.last_row'''  # nosec B608  # our identifiers
        )
        in_file_duplicates = cursor.fetchall()
        for row_no, last_row in in_file_duplicates:
            report.writerow([row_no, f"skipped: the same {key} again at row {last_row}"])
        cursor.execute(f'CREATE INDEX ON "{stage}" ("{key}")')
        cursor.execute(f'ANALYZE "{stage}"')
        match = f'm.list_id = %(list)s AND m.obscured_at IS NULL AND m."{key}" = s."{key}"'
        params: dict[str, Any] = {
            "list": member_list.pk,
            "suppressed": suppressed,
            "now": timezone.now(),
            "status": str(new_status),
            "unique_email": policy.unique_email,
            "unique_mobile": policy.unique_mobile,
        }
        cursor.execute(
            f'''SELECT count(DISTINCT s.row_no),
                       count(DISTINCT s.row_no) FILTER (WHERE m.status = ANY(%(suppressed)s))
                FROM "{stage}" s JOIN members_member m ON {match}''',  # nosec B608  # our identifiers
            params,
        )
        matched, matched_suppressed = cursor.fetchone()
        staged = counts.good - len(in_file_duplicates) - len(keyless)
        updated = created = resubscribed = 0
        if handle in (HandleExisting.UPDATE, HandleExisting.UPDATE_ONLY):
            updated = matched
            resubscribed = matched_suppressed if options.resubscribe else 0
        if handle in (HandleExisting.UPDATE, HandleExisting.IGNORE):
            created = staged - matched
        if job.preview:
            transaction.set_rollback(True)  # nothing was written but the staging table
            resubscribed = matched_suppressed  # what `resubscribe` would do
        if updated and not job.preview:
            data = "s.data" if options.empty_field else "m.data || s.data"
            other = "mobile" if key == "email" else "email"
            _fields_changed(
                cursor,
                member_list.pk,
                f'FROM "{stage}" s JOIN members_member m ON {match}',
                data,
                params,
            )
            cursor.execute(
                f'''UPDATE members_member m SET
                        data = {data},
                        "{other}" = COALESCE(NULLIF(s."{other}", ''), m."{other}"),
                        email_key = CASE WHEN %(unique_email)s AND
                            COALESCE(NULLIF(s.email, ''), m.email) <> ''
                            THEN COALESCE(NULLIF(s.email, ''), m.email) END,
                        mobile_key = CASE WHEN %(unique_mobile)s AND
                            COALESCE(NULLIF(s.mobile, ''), m.mobile) <> ''
                            THEN COALESCE(NULLIF(s.mobile, ''), m.mobile) END,
                        status = CASE WHEN %(resubscribe)s AND m.status = ANY(%(suppressed)s)
                                 THEN 'active' ELSE m.status END,
                        email_status = CASE WHEN %(resubscribe)s
                                 AND m.email_status = ANY(%(suppressed)s)
                                 THEN 'active' ELSE m.email_status END,
                        updated_at = %(now)s
                    FROM "{stage}" s WHERE {match}''',  # nosec B608  # our identifiers
                {**params, "resubscribe": options.resubscribe},
            )
        if new_status == MemberStatus.UNCONFIRMED and not job.preview:
            # The confirmation mails go out from a worker once the members exist. Queued
            # even when this run created nobody: a run that died after its commit and
            # before this point left members the rerun only finds as existing ones.
            from members.tasks import send_import_optins

            transaction.on_commit(lambda: send_import_optins.delay(job.pk))
        if created and not job.preview:
            inserted = _insert_new(cursor, stage, key, policy, match, params)
            conflicts = created - inserted
            created = inserted
            if inserted and options.trigger_autoresponder:
                _autoresponders_trigger(member_list.pk, params["now"])
            if inserted:
                # Subscribe events for the new members (they share created_at), written in
                # batches by a task of their own once this commits; only if a webhook wants them.
                webhooks_after_import(
                    import_id=job.pk, member_list=member_list, created_at=params["now"]
                )
            if conflicts:
                other = "mobile" if key == "email" else "email"
                _error(
                    counts,
                    report,
                    0,
                    f"{conflicts} rows skipped: their {other} belongs to another member",
                )
    _finish(
        job,
        counts,
        created=created,
        updated=updated,
        resubscribed=resubscribed,
        skipped=len(in_file_duplicates) + (staged - created - updated),
    )


def _fields_changed(
    cursor: Any, list_id: int, source: str, data: str, params: dict[str, Any]
) -> None:
    """Before the UPDATE: the watched fields it changes, for the "field changed"
    autoresponders (imported here, not at the top: members does not otherwise depend on
    campaigns)."""
    from campaigns.autoresponder_events import import_fields_changed

    import_fields_changed(cursor, list_id=list_id, source=source, new_data=data, params=params)


def _autoresponders_trigger(list_id: int, created_at: datetime) -> None:
    """The import asked that its new members (all stamped ``created_at``) count as
    subscribed for the list's autoresponders."""
    from campaigns.autoresponder_events import import_members_trigger

    import_members_trigger(list_id=list_id, members_created_at=created_at)


def _insert_new(
    cursor: Any, stage: str, key: str, policy: Duplicates, match: str, params: dict[str, Any]
) -> int:
    """Add the staged rows that match no member; return how many were added.

    A row whose other key (the mobile of an email import) belongs to another member, or to
    an earlier row, is left out: ON CONFLICT DO NOTHING, in file order. That checks every
    unique index before every row. When no staged row has the other key (the usual file of
    emails), nothing can conflict but a member added meanwhile by someone else, so we insert
    plainly, in key order, which fills the key's indexes page by page instead of at random:
    a third less work on a big file. Should a conflict happen after all, the savepoint
    undoes that attempt and the careful statement runs.
    """
    insert = f'''INSERT INTO members_member (id, list_id, email, mobile, email_key, mobile_key,
                data, status, email_status, mobile_status, consent_source, consent_text,
                consent_at, imported, sent_mail, open_rate, created_at, updated_at)
            SELECT gen_random_uuid(), %(list)s, s.email, s.mobile,
                CASE WHEN %(unique_email)s AND s.email <> '' THEN s.email END,
                CASE WHEN %(unique_mobile)s AND s.mobile <> '' THEN s.mobile END,
                s.data, %(status)s, %(status)s, 'active', 'import', '',
                %(now)s, true, 0, 0, %(now)s, %(now)s
            FROM "{stage}" s
            WHERE NOT EXISTS (SELECT 1 FROM members_member m WHERE {match})'''  # nosec B608  # our identifiers
    if not _other_key_staged(cursor, stage, key, policy):
        try:
            with transaction.atomic():
                # Byte order: a cheap sort (no locale rules), near enough to the index's own.
                cursor.execute(f'{insert} ORDER BY s."{key}" COLLATE "C"', params)
                return int(cursor.rowcount)
        except IntegrityError:
            log.info("list %s got a member with a staged key meanwhile", params["list"])
    cursor.execute(f"{insert} ORDER BY s.row_no ON CONFLICT DO NOTHING", params)
    return int(cursor.rowcount)


def _other_key_staged(cursor: Any, stage: str, key: str, policy: Duplicates) -> bool:
    """Does a staged row have a value for the other unique key, which could conflict?"""
    other = "mobile" if key == "email" else "email"
    if not (policy.unique_mobile if other == "mobile" else policy.unique_email):
        return False
    cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{stage}" WHERE "{other}" <> \'\')')  # nosec B608  # our identifiers
    return bool(cursor.fetchone()[0])


def _finish(
    job: Import, counts: Counts, *, created: int, updated: int, resubscribed: int, skipped: int
) -> None:
    Import.objects.filter(pk=job.pk).update(
        status=ImportStatus.DONE,
        rows_total=counts.rows,
        rows_done=counts.rows,
        created=created,
        updated=updated,
        skipped=skipped,
        resubscribed=resubscribed,
        error_count=counts.error_count,
        errors=counts.errors,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )


def import_report_rows(job: Import) -> Iterable[list[str]]:
    """The error report, streamed (for the download and the email)."""
    if not job.report or not Path(job.report).exists():
        return
    with Path(job.report).open(newline="", encoding="utf-8") as handle:
        yield from csv.reader(handle)


def import_mail_report(*, import_id: int) -> None:
    """Mail the error report to the address the import named (``sendErrorsTo``)."""
    from django.core.mail import EmailMessage

    job = Import.objects.select_related("list").get(pk=import_id)
    address = job.options.get("send_errors_to")
    if not address or not job.report or not Path(job.report).exists():
        return
    message = EmailMessage(
        subject=f"Import into {job.list.name}: {job.error_count} rows with errors",
        body=(
            f"The import of {job.file_name or 'your file'} into the list {job.list.name} is "
            f"{job.status}.\n\nAdded: {job.created}\nUpdated: {job.updated}\n"
            f"Skipped: {job.skipped}\nRows with errors: {job.error_count}\n\n"
            "The attached report names each row and what was wrong with it.\n"
        ),
        to=[address],
    )
    message.attach_file(job.report, mimetype="text/csv")
    message.send()
