"""Read member-import CSV files the way people actually produce them, one row at a time.

Files come from Excel (Danish Excel writes ``;`` and Windows-1252), Google Sheets, Numbers
and hand-written scripts, and may be hundreds of MB. So we look at a bounded sample to decide
the encoding, the delimiter and the header, then stream the rest without ever holding the
whole file. Every record comes out as a :class:`Row` numbered by the physical line where it
starts, so an import report can say "row 17" and mean what the spreadsheet user sees.

Encoding rules (see :func:`open_csv`):

* a UTF-8 BOM means UTF-8 (the BOM is dropped); a sample that is valid UTF-8 means UTF-8;
  anything else is Windows-1252, the Danish Excel default and a superset of Latin-1 for text;
* if a file detected as UTF-8 turns out to contain bytes that are not UTF-8 after the sample
  (typically an ASCII-only sample followed by "Søren" in Windows-1252), only those bytes are
  read as Windows-1252: ASCII is the same in both, so nothing read earlier was wrong. Such rows
  are counted in :attr:`CsvSource.recoded_rows`;
* bytes that cannot be read at all (an explicit encoding that does not fit, or the five bytes
  Windows-1252 leaves undefined) make that row an error instead of being replaced silently.

Quoting is parsed strictly, because lenient parsing lets one stray quote merge many rows
into one value without a trace. A record that fails strict parsing but fits on one line is
re-read leniently (``"Søren" Hansen`` becomes ``Søren Hansen``, as in Excel): within one
line nothing can be merged. Other malformed records (a quote left open, a NUL character, a
value over :data:`FIELD_LIMIT` characters) become error rows, and reading resumes at the line
after the one where the bad record started, so the rows an open quote swallowed are read.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DELIMITERS",
    "FIELD_LIMIT",
    "MAX_RECORD_CHARS",
    "SAMPLE_SIZE",
    "BinaryReadable",
    "CsvError",
    "CsvSource",
    "NotCsvError",
    "Row",
    "open_csv",
]

SAMPLE_SIZE = 64 * 1024
"""Bytes read up front to detect encoding, delimiter and header."""

FIELD_LIMIT = 128 * 1024
"""Longest value we accept, in characters; longer is almost always an unclosed quote."""

MAX_RECORD_CHARS = 1024 * 1024
"""Longest record (all its lines) we buffer; bounds memory for a file without line breaks."""

DELIMITERS = ("\t", "|", ";", ",", ":")
"""Delimiters we detect, in order of preference when two fit the sample equally well.

Tabs and pipes almost never occur inside data; ``;`` comes before ``,`` because Danish files
use ``;`` between columns and ``,`` inside numbers ("12,50").
"""

_SINGLE_COLUMN_DELIMITERS = (",", ";", "\t", "|", ":")
_DETECTION_RECORDS = 100
_READ_CHUNK = 64 * 1024

_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_NUMBERISH = re.compile(r"[\d\s+\-.,/:()]*\d[\d\s+\-.,/:()]*")

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or an Excel/Word file (.xlsx, .docx)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel/Word file (.xls, .doc)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_EXCEL_ADVICE = "In Excel, use File > Save As > 'CSV UTF-8 (comma delimited)'."


class CsvError(ValueError):
    """The file cannot be read any further; the message is meant for the person importing."""


class NotCsvError(CsvError):
    """The file is not a text/CSV file at all (an image, a workbook, an archive...)."""


class BinaryReadable(Protocol):
    """Anything with a binary read(): an open file, io.BytesIO, a Django UploadedFile."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(slots=True)
class Row:
    """One record: ``number`` is the 1-based physical line where it starts.

    ``values`` are trimmed. An unreadable record has ``error`` set (a message naming the row)
    and no values; it is reported rather than dropped or guessed at.
    """

    number: int
    values: list[str]
    error: str | None = None


class CsvSource:
    """What was detected about a file, its header, and its rows (iterate once; it streams).

    Made by :func:`open_csv`; ``encoding`` is a Python codec name ("utf-8", "utf-8-sig",
    "cp1252", or the normalised explicit one).
    """

    def __init__(
        self,
        *,
        encoding: str,
        delimiter: str,
        header: list[str] | None,
        rows: Iterator[Row],
        parser: _Parser | None = None,
    ) -> None:
        self.encoding = encoding
        self.delimiter = delimiter
        self.header = header
        self._rows = rows
        self._parser = parser

    @property
    def recoded_rows(self) -> int:
        """Rows so far whose non-UTF-8 bytes were read as Windows-1252 in a UTF-8 file."""
        return self._parser.recoded_rows if self._parser else 0

    def __iter__(self) -> Iterator[Row]:
        return self._rows


def open_csv(
    file: BinaryReadable,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    has_header: bool | None = None,
) -> CsvSource:
    """Detect what is needed from a sample of ``file`` (binary, read from its current position).

    ``encoding`` and ``delimiter`` override detection; ``has_header=None`` guesses (see
    :func:`_guess_header`). Raises :class:`NotCsvError` for binary files, ``ValueError`` for
    an unknown encoding or an unusable delimiter, ``TypeError`` for a text-mode file, and
    :class:`CsvError` when ``has_header=True`` but the first record cannot be read. While
    iterating, :class:`CsvError` is raised only when an explicit encoding that cannot carry
    stray bytes (UTF-16, UTF-32) meets bytes it cannot decode. The file is not closed.
    """
    _check_delimiter(delimiter)
    sample = _read_sample(file)
    at_eof = len(sample) < SAMPLE_SIZE
    codec, fallback = _choose_encoding(sample, at_eof, encoding)
    _check_signature(sample, explicit_encoding=encoding is not None)
    text = _open_text(sample, file, codec)
    sample_text = codecs.getincrementaldecoder(codec)(errors="replace").decode(sample, at_eof)
    _check_control_characters(sample_text)
    chosen = delimiter or _detect_delimiter(_complete_lines(sample_text, at_eof))
    parser = _Parser(text, codec, chosen, fallback=fallback)
    header, rows = _split_header(parser.rows(), has_header)
    return CsvSource(encoding=codec, delimiter=chosen, header=header, rows=rows, parser=parser)


# -- detection ---------------------------------------------------------------------------


def _check_delimiter(delimiter: str | None) -> None:
    """The csv module needs one character, and quotes or line breaks cannot separate columns."""
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise ValueError(f"A delimiter must be a single character, not {delimiter!r}.")


def _read_sample(file: BinaryReadable) -> bytes:
    """Up to SAMPLE_SIZE bytes; loops because a stream may return short reads before EOF."""
    chunks: list[bytes] = []
    size = 0
    while size < SAMPLE_SIZE:
        chunk = file.read(SAMPLE_SIZE - size)
        if not chunk:
            break
        if not isinstance(chunk, bytes | bytearray):
            raise TypeError("open_csv() needs a file opened in binary mode ('rb').")
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _choose_encoding(sample: bytes, at_eof: bool, explicit: str | None) -> tuple[str, bool]:
    """The codec to read with, and whether stray non-UTF-8 bytes may be read as Windows-1252.

    The fallback is only for a detected UTF-8: an explicit encoding is the caller's word, so
    bytes that do not fit it are errors, not guesses.
    """
    if explicit is not None:
        try:
            name = codecs.lookup(explicit).name
        except LookupError:
            raise ValueError(f"Unknown encoding: {explicit!r}.") from None
        if name == "utf-8" and sample.startswith(codecs.BOM_UTF8):
            name = "utf-8-sig"
        return name, False
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", True
    if _is_utf8(sample, at_eof):
        return "utf-8", True
    return "cp1252", False


def _is_utf8(sample: bytes, at_eof: bool) -> bool:
    """Valid UTF-8, allowing a character cut in half at the end of a sample that is not the end."""
    try:
        codecs.utf_8_decode(sample, "strict", at_eof)
    except UnicodeDecodeError:
        return False
    return True


def _check_signature(sample: bytes, *, explicit_encoding: bool) -> None:
    """Name the common non-CSV files people upload by mistake, so the message can help."""
    for signature, kind in _SIGNATURES:
        if sample.startswith(signature):
            raise NotCsvError(f"This is {kind}, not a CSV file. {_EXCEL_ADVICE}")
    if not explicit_encoding and sample.startswith(_UTF16_BOMS):
        raise NotCsvError(
            "This file is UTF-16 text (Excel's 'Unicode Text'), which we do not read. "
            + _EXCEL_ADVICE
        )


def _check_control_characters(text: str) -> None:
    """Text files have (almost) no control characters; binaries have about one byte in ten.

    A single stray NUL in an otherwise good file is left to become an error for its row.
    """
    if len(_CONTROL.findall(text)) * 100 > len(text):
        raise NotCsvError(
            "This file contains binary data (such as NUL bytes), not text, so it is not a "
            f"CSV file. {_EXCEL_ADVICE}"
        )


def _complete_lines(text: str, at_eof: bool) -> str:
    """Drop the last line of a sample that stops mid-line, so it does not skew the counts."""
    if at_eof:
        return text
    end = max(text.rfind("\n"), text.rfind("\r"))
    return text[: end + 1] if end > 0 else text


def _detect_delimiter(text: str) -> str:
    """The delimiter that splits most of the sample's records into the same number (>1) of fields.

    Records are parsed with the csv module, so quoted values containing other delimiters or
    line breaks do not count. Ties go to the earlier entry of DELIMITERS. No candidate at all
    means a single column: we pick a delimiter that occurs in no sample record.
    """
    best, best_score = "", 0
    counts_by_delimiter = {d: _field_counts(text, d) for d in DELIMITERS}
    for candidate, counts in counts_by_delimiter.items():
        if not counts:
            continue
        width, score = Counter(counts).most_common(1)[0]
        if width > 1 and score > best_score:
            best, best_score = candidate, score
    if best:
        return best
    for candidate in _SINGLE_COLUMN_DELIMITERS:
        if all(count == 1 for count in counts_by_delimiter[candidate]):
            return candidate
    return ","


def _field_counts(text: str, delimiter: str) -> list[int]:
    """Fields per non-blank record over the first records of the sample."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    counts: list[int] = []
    try:
        for record in islice(reader, _DETECTION_RECORDS):
            if any(value.strip() for value in record):
                counts.append(len(record))
    except csv.Error:
        pass  # The parser will report the bad record; the records before it still count.
    return counts


# -- header ------------------------------------------------------------------------------


def _split_header(
    rows: Iterator[Row], has_header: bool | None
) -> tuple[list[str] | None, Iterator[Row]]:
    """Take the header off the front of the rows, peeking at most two rows to guess."""
    first = next(rows, None)
    if first is None:
        return None, rows
    if first.error:
        if has_header:
            raise CsvError(f"The header line cannot be read. {first.error}")
        return None, chain([first], rows)
    peeked: list[Row] = []
    if has_header is None:
        second = next(rows, None)
        peeked = [second] if second else []
        usable = second.values if second and not second.error else None
        has_header = _guess_header(first.values, usable)
    if has_header:
        return first.values, chain(peeked, rows)
    return None, chain([first], peeked, rows)


def _guess_header(first: list[str], second: list[str] | None) -> bool:
    """Is the first row a header?

    Yes when nothing in it looks like data (an email address or a number, which includes
    phone numbers, dates and amounts) and the second row has data in a column where the
    first row has text. A lone row is a header when nothing in it looks like data.
    """
    if any(_looks_like_data(value) for value in first):
        return False
    if second is None:
        return True
    pairs = zip(first, second, strict=False)  # Rows may be ragged; compare what both have.
    return any(name and _looks_like_data(value) for name, value in pairs)


def _looks_like_data(value: str) -> bool:
    return bool(_EMAIL.fullmatch(value) or _NUMBERISH.fullmatch(value))


# -- streaming ---------------------------------------------------------------------------


class _Rejoined(io.RawIOBase):
    """The sample we already read followed by the rest of the file: no seek() needed."""

    def __init__(self, head: bytes, tail: BinaryReadable) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        out = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(out), len(self._head))
            out[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._tail.read(len(out))
        out[: len(data)] = data
        return len(data)


def _open_text(sample: bytes, file: BinaryReadable, codec: str) -> io.TextIOWrapper:
    """Decode lazily; undecodable bytes become lone surrogates so no read ever fails midway.

    ``newline=""`` keeps CR, LF and CRLF as they are, which the csv module needs to tell line
    breaks inside quoted values from the ends of records.
    """
    raw = io.BufferedReader(_Rejoined(sample, file), buffer_size=_READ_CHUNK)
    try:
        return io.TextIOWrapper(raw, encoding=codec, errors="surrogateescape", newline="")
    except LookupError:
        raise ValueError(f"{codec!r} is not a text encoding.") from None


class _RecordTooLong(Exception):
    """Raised from inside csv.reader's input to stop a record that would not fit in memory."""


class _Lines:
    """Physical lines for csv.reader, keeping the current record's lines and first line number.

    Keeping them lets us resume after a bad record at its second line (what an unclosed quote
    swallowed). A record's lines are always consecutive, so one number locates them all.
    """

    def __init__(self, text: io.TextIOWrapper, codec: str) -> None:
        self._readline = text.readline
        self._codec = codec
        self._pending: deque[str] = deque()
        self.start = 1
        self.record: list[str] = []
        self.record_chars = 0
        self.suspect = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._pending.popleft() if self._pending else self._read()
        self.record.append(line)
        self.record_chars += len(line)
        if self.record_chars > MAX_RECORD_CHARS:
            raise _RecordTooLong
        if "\x00" in line:
            self.suspect = True
        elif not line.isascii():
            try:
                line.encode()  # Fails only on surrogateescape'd bytes; cheaper than a regex.
            except UnicodeEncodeError:
                self.suspect = True
        return line

    def _read(self) -> str:
        """The next line, or its first MAX_RECORD_CHARS+1 characters (the rest is skipped)."""
        limit = MAX_RECORD_CHARS + 1
        try:
            line = piece = self._readline(limit)
            while len(piece) >= limit and piece[-1] not in "\r\n":
                piece = self._readline(limit)
        except UnicodeDecodeError as exc:
            # Decoding runs a chunk ahead of the lines, so the bad bytes are here or a bit later.
            line_no = self.start + len(self.record)
            raise CsvError(
                f"The file cannot be read as {self._codec} from line {line_no} on: {exc.reason}."
            ) from exc
        if not line:
            raise StopIteration
        return line

    def start_record(self) -> None:
        self.start += len(self.record)
        self.record = []
        self.record_chars = 0
        self.suspect = False

    def replay_after_first(self) -> None:
        """Read the current record's lines again, except its first."""
        self._pending.extendleft(reversed(self.record[1:]))
        del self.record[1:]


class _Parser:
    """Turns lines into Rows, converting every kind of malformed record into an error row."""

    def __init__(
        self, text: io.TextIOWrapper, codec: str, delimiter: str, *, fallback: bool
    ) -> None:
        self._lines = _Lines(text, codec)
        self._codec = codec
        self._dialect: dict[str, Any] = {"delimiter": delimiter, "skipinitialspace": True}
        self._fallback = fallback
        self.recoded_rows = 0

    def rows(self) -> Iterator[Row]:
        lines = self._lines
        # strict: an open quote stops at the next stray quote instead of silently merging rows.
        reader = csv.reader(lines, strict=True, **self._dialect)
        while True:
            lines.start_record()
            try:
                record = next(reader)
            except StopIteration:
                return
            except (csv.Error, _RecordTooLong) as exc:
                row = self._after_error(exc)
            else:
                row = self._row(lines.start, record)
            if row is not None:
                yield row

    def _after_error(self, exc: Exception) -> Row | None:
        """Read a one-line record leniently; otherwise report it and resume at its second line.

        Within one line leniency cannot merge rows, so ``"Søren" Hansen`` or ``"x" ;y`` are
        read as Excel would read them. Across lines it could, so that is an error.
        """
        number, first_line = self._lines.start, self._lines.record[0]
        if isinstance(exc, csv.Error) and len(self._lines.record) == 1:
            record = _parse_one_line_leniently(first_line, self._dialect)
            if record is not None:
                return self._row(number, record)
        self._lines.replay_after_first()
        return _error_row(number, _explain(exc))

    def _row(self, number: int, record: list[str]) -> Row | None:
        """A trimmed Row, an error Row, or None for a blank line (all values empty)."""
        if self._lines.suspect:
            problem, record = self._repair(record)
            if problem:
                return _error_row(number, problem)
        values = [value.strip() for value in record]
        if not any(values):
            return None
        if self._lines.record_chars > FIELD_LIMIT and max(map(len, values)) > FIELD_LIMIT:
            return _error_row(number, _TOO_LONG_VALUE)
        return Row(number, values)

    def _repair(self, record: list[str]) -> tuple[str | None, list[str]]:
        """A problem message, or the values with stray non-UTF-8 bytes read as Windows-1252."""
        if any("\x00" in value for value in record):
            return "it contains a NUL character, which cannot be stored.", record
        escaped = [m.group() for value in record for m in _ESCAPED_BYTES.finditer(value)]
        if not escaped:
            return None, record
        if not self._fallback:
            return f"it contains bytes that are not valid {self._codec}: {_hex(escaped)}.", record
        try:
            repaired = [_ESCAPED_BYTES.sub(_as_cp1252, value) for value in record]
        except UnicodeDecodeError:
            return f"it contains bytes that are neither UTF-8 nor cp1252: {_hex(escaped)}.", record
        self.recoded_rows += 1
        return None, repaired


_TOO_LONG_VALUE = f'a value is longer than {FIELD_LIMIT:,} characters; is a quote (") left open?'


def _explain(exc: Exception) -> str:
    """The csv module's terse messages, in words an importing user can act on."""
    if isinstance(exc, _RecordTooLong):
        return f'the row is longer than {MAX_RECORD_CHARS:,} characters; is a quote (") left open?'
    message = str(exc)
    if "field larger than field limit" in message:
        return _TOO_LONG_VALUE
    if "unexpected end of data" in message:
        return 'a quoted value is never closed: the file ends inside quotes (").'
    if "expected after" in message:
        return (
            "there is text after the closing quote of a value; "
            'quotes inside a value must be doubled ("").'
        )
    return f"it cannot be read as CSV ({message})."


def _parse_one_line_leniently(line: str, dialect: dict[str, Any]) -> list[str] | None:
    """The record on ``line`` parsed non-strictly, or None if it would need the next line."""
    reader = csv.reader([line, "\n"], strict=False, **dialect)
    try:
        record = next(reader)
    except csv.Error:
        return None
    return record if reader.line_num == 1 else None


def _error_row(number: int, problem: str) -> Row:
    return Row(number, [], error=f"Row {number}: {problem}")


def _raw_bytes(escaped: str) -> bytes:
    """The original bytes behind surrogateescape's lone surrogates."""
    return escaped.encode("utf-8", "surrogateescape")


def _as_cp1252(match: re.Match[str]) -> str:
    return _raw_bytes(match.group()).decode("cp1252")


def _hex(escaped: list[str]) -> str:
    return " ".join(f"0x{byte:02X}" for byte in _raw_bytes("".join(escaped))[:8])
