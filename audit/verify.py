"""Recompute the audit chain and name the first broken or missing row.

The rows are streamed in ``seq`` order through a server-side cursor, every field already
in the text form that is hashed (audit/chain.py), the next batch fetched while this one
is hashed: Python does little more per row than join the texts and one SHA-256.

What it finds, row by row:

1. a gap in ``seq``: rows were deleted (``seq`` is handed out without gaps);
2. a ``prev_hash`` that is not the previous row's ``hash``: a row was put in or the
   chain relinked;
3. a ``hash`` that is not the hash of the row's contents: the row was altered.

Rows cut off the end leave no trace inside the table; ``head`` (a published chain head,
``seq`` and ``hash``) catches that: the row must still be there with that hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from audit.chain import TEXT_COLUMNS, canonical
from audit.models import GENESIS_HASH

# The sequence number, every field as the text that is hashed (chain.TEXT_COLUMNS, which
# ends with prev_hash), and the stored hash.
_ROWS = f"SELECT seq, {TEXT_COLUMNS}, hash FROM audit_auditevent e ORDER BY e.seq"  # noqa: S608 - constant column list  # nosec B608
BATCH = 20_000


@dataclass
class Problem:
    seq: int
    kind: str  # "missing", "relinked", "altered", "head"
    detail: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.detail}"


@dataclass
class Result:
    rows: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    problems: list[Problem] = field(default_factory=list)
    head_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        first = self.problems[0] if self.problems else None
        return {
            "ok": self.ok,
            "rows": self.rows,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "first_broken_seq": first.seq if first else None,
            "first_problem": str(first) if first else None,
            "problems": [{"seq": p.seq, "kind": p.kind, "detail": p.detail} for p in self.problems],
            "head_checked": self.head_checked,
        }


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as published, e.g. ``1234:9f86d0…``."""
    seq, _, digest = text.strip().partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("a head is SEQ:HASH, the sequence number and the 64 hex digits")
    return int(seq), digest


def verify(
    *,
    head: tuple[int, str] | None = None,
    stop_at_first: bool = True,
    progress: Callable[[int, int], None] | None = None,
    every: int = 100_000,
) -> Result:
    """Walk the whole chain. ``progress(rows, seq)`` is called every ``every`` rows."""
    result = Result()
    expected_seq, prev_hash = 1, GENESIS_HASH
    sha256 = hashlib.sha256
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if own_transaction:  # one snapshot for the whole walk
            with connection.cursor() as first:
                first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        connection.ensure_connection()
        # A named cursor streams the rows from the server, BATCH at a time.
        cursor = connection.connection.cursor(name="audit_verify")
        cursor.itersize = BATCH
        cursor.execute(_ROWS)
        batches = _prefetched(cursor)
        try:
            for rows in batches:
                for row in rows:
                    seq, stored = row[0], row[20]
                    problem = None
                    if seq != expected_seq:
                        problem = _missing(expected_seq, seq)
                    elif row[19] != prev_hash:
                        problem = Problem(seq, "relinked", RELINKED)
                    elif sha256(canonical(row[1:20]).encode()).hexdigest() != stored:
                        problem = Problem(seq, "altered", ALTERED)
                    elif head is not None and seq == head[0]:
                        result.head_checked = True
                        if stored != head[1]:
                            problem = Problem(seq, "head", "hash differs from the published head")
                    if problem is not None:
                        result.problems.append(problem)
                        if stop_at_first:
                            return _finish(result, head, seq, stored)
                    expected_seq, prev_hash = seq + 1, stored
                    result.rows += 1
                    if progress is not None and result.rows % every == 0:
                        progress(result.rows, seq)
        finally:
            batches.close()  # the fetching thread is done before the cursor closes
            cursor.close()
    return _finish(result, head, expected_seq - 1, prev_hash)


RELINKED = "prev_hash is not the hash of the row before"
ALTERED = "contents do not match its hash (altered)"


def _missing(expected: int, found: int) -> Problem:
    gone = str(expected) if found == expected + 1 else f"{expected} to {found - 1}"
    return Problem(expected, "missing", f"missing (rows {gone} are gone)")


def _prefetched(cursor: Any) -> Generator[list[tuple[Any, ...]], None, None]:
    """The cursor's batches, the next one fetched by a thread while this one is hashed
    (psycopg2 lets go of the GIL while it waits for the server)."""
    batches: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                rows = cursor.fetchmany(BATCH)
                batches.put(rows)
                if not rows:
                    return
        except BaseException as error:  # handed to the reading thread
            batches.put(error)

    fetcher = threading.Thread(target=fetch, name="audit_verify-fetch", daemon=True)
    fetcher.start()
    try:
        while True:
            item = batches.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        while fetcher.is_alive():  # let a fetch in progress finish before the cursor closes
            with contextlib.suppress(queue.Empty):
                batches.get(timeout=0.1)
        fetcher.join()


def _finish(result: Result, head: tuple[int, str] | None, seq: int, digest: str) -> Result:
    result.last_seq, result.last_hash = seq, digest
    if head is not None and not result.head_checked and not result.problems:
        result.problems.append(
            Problem(head[0], "head", "the published head is missing (rows were cut off the end)")
        )
    return result
