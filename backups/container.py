"""The backup file: compressed, encrypted, checksummed, with its manifest inside.

Layout::

    MAGIC
    header length (4 bytes) + header (JSON: format, key id, salt, kind, time)
    data chunks: length (4 bytes) + AES-256-GCM ciphertext, ...
    manifest block: length (4 bytes) + AES-256-GCM ciphertext of the manifest (JSON)
    trailer: offset of the manifest block, number of data chunks (8 bytes each),
             TRAILER_MAGIC

The plain data is a zstd stream of records (``kind`` byte, length, bytes): a table's
start (its name and columns), blocks of its ``COPY … (FORMAT binary)`` output, its end;
the same for an extra file (the audit chain heads). Each table starts a zstd frame and
a chunk of its own, and the manifest's ``index`` gives that chunk's number and offset:
a reader can start at any table without decrypting and decompressing the ones before.
The key of a file is derived (HKDF-SHA256) from the backup key named in the header, a
random salt and the header itself, so no two files share a key and a changed header
opens nothing. Chunk ``n`` is sealed with nonce ``n``; the last data chunk is marked, so
a file cut short is noticed.

The manifest names the tables, their columns, row counts and SHA-256 of their plain
COPY data, the schema version, and the SHA-256 of the data chunks as written: reading
the trailer and the manifest and hashing the data section tells a truncated, altered or
wrongly keyed file before anything is restored (``open_backup``/``check``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from heyloyalty.keys import Key

MAGIC = b"HLBACKUP\x01\n"
TRAILER_MAGIC = b"HLEND\x01\n\x00"
FORMAT = 1
CHUNK = 1 << 20  # plain bytes (compressed) per encrypted chunk
BLOCK = 1 << 20  # plain COPY bytes per data record
COMPRESSION_LEVEL = 1
_LEN = struct.Struct(">I")
_OFFSET = struct.Struct(">Q")
TRAILER_SIZE = 2 * _OFFSET.size + len(TRAILER_MAGIC)

# Record kinds of the plain stream.
TABLE, FILE, DATA, END = b"T", b"F", b"D", b"E"


class BackupFileError(Exception):
    """The file cannot be trusted or opened: the message says why, for an operator."""


def _file_key(key: Key, salt: bytes, header: bytes) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=b"heyloyalty-backup-1" + header
    ).derive(key.raw)
    return AESGCM(derived)


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


_AAD_MORE, _AAD_LAST, _AAD_MANIFEST = b"data", b"data-last", b"manifest"


# -------------------------------------------------------------------------- writing


class Writer:
    """Writes one backup file; ``table``/``data``/``end`` records, then ``close(manifest)``.

    The caller writes to a temporary name and renames when ``close`` returned (storage.py).
    """

    def __init__(self, out: BinaryIO, *, key: Key, kind: str, created_at: str) -> None:
        self.out = out
        salt = os.urandom(16)
        self.header = json.dumps(
            {
                "format": FORMAT,
                "key_id": key.id,
                "salt": salt.hex(),
                "kind": kind,
                "created_at": created_at,
                "compression": "zstd",
            },
            sort_keys=True,
        ).encode()
        self.aead = _file_key(key, salt, self.header)
        out.write(MAGIC + _LEN.pack(len(self.header)) + self.header)
        self.offset = len(MAGIC) + _LEN.size + len(self.header)
        self.data_start = self.offset
        self.data_hash = hashlib.sha256()
        self.counter = 0
        self.pending: bytes | None = None
        self.buffer = bytearray()
        self.compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compressobj()
        self.chunk_offsets: list[int] = []
        self.starts: dict[str, int] = {}  # table name: its first chunk

    # Records -------------------------------------------------------------------------

    def record(self, kind: bytes, payload: bytes = b"") -> None:
        self._plain(kind + _LEN.pack(len(payload)))
        if payload:
            self._plain(payload)

    def table(self, name: str, columns: list[list[str]]) -> None:
        self._boundary()
        self.starts[name] = self.counter + (1 if self.pending is not None else 0)
        self.record(TABLE, json.dumps({"table": name, "columns": columns}).encode())

    def _boundary(self) -> None:
        """End the zstd frame and the chunk: what follows starts afresh at a chunk."""
        tail = self.compressor.flush()
        if tail:
            self._compressed(tail)
        if self.buffer:
            self._seal(bytes(self.buffer))
            self.buffer.clear()
        self.compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compressobj()

    def file(self, name: str) -> None:
        self.record(FILE, json.dumps({"file": name}).encode())

    def data(self, block: bytes) -> None:
        self.record(DATA, block)

    def end(self) -> None:
        self.record(END)

    # Compression and encryption -------------------------------------------------------

    def _plain(self, data: bytes) -> None:
        compressed = self.compressor.compress(data)
        if compressed:
            self._compressed(compressed)

    def _compressed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= CHUNK:
            self._seal(bytes(self.buffer[:CHUNK]))
            del self.buffer[:CHUNK]

    def _seal(self, chunk: bytes) -> None:
        # One chunk is held back, so that the last one can be marked as the last.
        if self.pending is not None:
            self._write_chunk(self.pending, last=False)
        self.pending = chunk

    def _write_chunk(self, chunk: bytes, *, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.counter), chunk, _AAD_LAST if last else _AAD_MORE)
        framed = _LEN.pack(len(sealed)) + sealed
        self.chunk_offsets.append(self.offset)
        self.out.write(framed)
        self.data_hash.update(framed)
        self.offset += len(framed)
        self.counter += 1

    def close(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Seal the data and the manifest; returns the manifest as written."""
        self._compressed(self.compressor.flush())
        return self.finish(manifest)

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if self.buffer:
            self._seal(bytes(self.buffer))
            self.buffer.clear()
        self._write_chunk(self.pending or b"", last=True)
        manifest = {
            **manifest,
            "format": FORMAT,
            "header": json.loads(self.header),
            "data_chunks": self.counter,
            "data_bytes": self.offset - self.data_start,
            "data_sha256": self.data_hash.hexdigest(),
            # Offsets from the start of the data: a longer header moves nothing.
            "index": {
                name: [chunk, self.chunk_offsets[chunk] - self.data_start]
                for name, chunk in self.starts.items()
                if chunk < len(self.chunk_offsets)
            }
            or manifest.get("index", {}),
        }
        body = json.dumps(manifest, sort_keys=True).encode()
        sealed = self.aead.encrypt(_nonce(self.counter), body, _AAD_MANIFEST)
        self.out.write(_LEN.pack(len(sealed)) + sealed)
        self.out.write(_OFFSET.pack(self.offset) + _OFFSET.pack(self.counter) + TRAILER_MAGIC)
        return manifest


# -------------------------------------------------------------------------- reading


@dataclass
class Opened:
    """A file whose trailer, header and manifest were read and authenticated."""

    path: Path
    header: dict[str, Any]
    manifest: dict[str, Any]
    aead: AESGCM
    data_start: int
    manifest_offset: int

    @property
    def key_id(self) -> str:
        return str(self.header["key_id"])


def read_header(path: Path) -> tuple[dict[str, Any], bytes, int]:
    with path.open("rb") as handle:
        start = handle.read(len(MAGIC) + _LEN.size)
        if len(start) < len(MAGIC) + _LEN.size or not start.startswith(MAGIC):
            raise BackupFileError(f"{path.name} is not a Heyloyalty backup file")
        (length,) = _LEN.unpack(start[len(MAGIC) :])
        if length > 65536:
            raise BackupFileError(f"{path.name}: the header is damaged")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except ValueError:
        raise BackupFileError(f"{path.name}: the header is damaged") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupFileError(f"{path.name}: format {header!r:.40} is not one this version reads")
    return header, raw, len(MAGIC) + _LEN.size + length


def open_backup(path: Path, keys: tuple[Key, ...]) -> Opened:
    """Authenticate the header, trailer and manifest with the key the header names.

    Raises BackupFileError for a file that is not a backup, is cut short, names a key not
    in the ring, or does not open with that key.
    """
    header, raw_header, data_start = read_header(path)
    key_id = str(header.get("key_id"))
    key = next((k for k in keys if k.id == key_id), None)
    if key is None:
        have = ", ".join(k.id for k in keys) or "none"
        raise BackupFileError(
            f"{path.name} was encrypted with the backup key {key_id!r}, which is not in "
            f"BACKUP_ENCRYPTION_KEYS (it holds: {have})"
        )
    aead = _file_key(key, bytes.fromhex(str(header["salt"])), raw_header)
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size < data_start + TRAILER_SIZE:
            raise BackupFileError(f"{path.name} is truncated: it ends before its manifest")
        handle.seek(size - TRAILER_SIZE)
        trailer = handle.read(TRAILER_SIZE)
        if trailer[2 * _OFFSET.size :] != TRAILER_MAGIC:
            raise BackupFileError(
                f"{path.name} is truncated or damaged: its last bytes are not the end marker "
                "(a backup that was not written to the end)"
            )
        (manifest_offset,) = _OFFSET.unpack(trailer[: _OFFSET.size])
        (chunks,) = _OFFSET.unpack(trailer[_OFFSET.size : 2 * _OFFSET.size])
        if not data_start <= manifest_offset <= size - TRAILER_SIZE - _LEN.size:
            raise BackupFileError(f"{path.name} is damaged: the manifest is out of place")
        handle.seek(manifest_offset)
        (length,) = _LEN.unpack(handle.read(_LEN.size))
        if manifest_offset + _LEN.size + length != size - TRAILER_SIZE:
            raise BackupFileError(f"{path.name} is damaged: the manifest is out of place")
        sealed = handle.read(length)
    manifest = _open_manifest(path, aead, sealed, key_id, chunks)
    return Opened(path, header, manifest, aead, data_start, manifest_offset)


def _open_manifest(
    path: Path, aead: AESGCM, sealed: bytes, key_id: str, chunks: int
) -> dict[str, Any]:
    # Sealed with nonce = the number of data chunks, which the manifest repeats.
    try:
        manifest: dict[str, Any] = json.loads(aead.decrypt(_nonce(chunks), sealed, _AAD_MANIFEST))
    except InvalidTag:
        raise BackupFileError(
            f"the backup key {key_id!r} does not open {path.name}: the key with that id is "
            "not the one the file was made with, or the file was altered"
        ) from None
    if manifest.get("data_chunks") != chunks:
        raise BackupFileError(f"{path.name} is damaged: its end marker was altered")
    return manifest


def check(opened: Opened) -> None:
    """Hash the data section and compare it with the manifest: altered bytes anywhere
    are found before the file is used."""
    expected = opened.manifest["data_sha256"]
    digest = hashlib.sha256()
    remaining = opened.manifest_offset - opened.data_start
    if remaining != opened.manifest["data_bytes"]:
        raise BackupFileError(
            f"{opened.path.name} is damaged: {remaining} bytes of data where the manifest "
            f"says {opened.manifest['data_bytes']}"
        )
    with opened.path.open("rb") as handle:
        handle.seek(opened.data_start)
        while remaining:
            block = handle.read(min(remaining, 4 << 20))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    if digest.hexdigest() != expected:
        raise BackupFileError(
            f"{opened.path.name} is corrupted: its data does not match the checksum in its manifest"
        )


def _chunks(
    opened: Opened, handle: IO[bytes], start: tuple[int, int] | None = None
) -> Iterator[bytes]:
    """The decrypted data chunks, in order (from chunk ``start`` = (number, offset)),
    checking each and the end."""
    counter, position = start or (0, opened.data_start)
    handle.seek(position)
    end = opened.manifest_offset
    while position < end:
        head = handle.read(_LEN.size)
        if len(head) < _LEN.size:
            break
        (length,) = _LEN.unpack(head)
        sealed = handle.read(length)
        position += _LEN.size + length
        last = position >= end
        try:
            yield opened.aead.decrypt(_nonce(counter), sealed, _AAD_LAST if last else _AAD_MORE)
        except InvalidTag:
            raise BackupFileError(
                f"{opened.path.name} is corrupted at byte {position - length}: a chunk does "
                "not authenticate"
            ) from None
        counter += 1
        if last:
            return
    raise BackupFileError(f"{opened.path.name} is truncated: its data ends early")


@dataclass
class Record:
    kind: bytes
    meta: dict[str, Any]


class Reader:
    """Walks the records of an opened file: ``for record in reader`` gives each table's
    (or file's) start; then ``read(n)`` returns its data until the end record (b"")."""

    def __init__(self, opened: Opened, *, start_at: str | None = None) -> None:
        """``start_at``: begin at this table's start, when the file's index has it."""
        self.opened = opened
        self.handle = opened.path.open("rb")
        index = opened.manifest.get("index") or {}
        start = None
        if start_at in index:
            chunk, offset = index[start_at]
            start = (int(chunk), int(offset) + opened.data_start)
        self.plain = zstandard.ZstdDecompressor().stream_reader(
            _ChunkStream(_chunks(opened, self.handle, start)),  # type: ignore[arg-type]
            read_size=CHUNK,
            read_across_frames=True,
        )
        self.left = 0  # bytes of the current data record still to read
        self.in_table = False

    def close(self) -> None:
        self.plain.close()
        self.handle.close()

    def _exact(self, size: int) -> bytes:
        block = self.plain.read(size)
        if len(block) == size:  # nearly always: no copy
            return bytes(block)
        out = bytearray(block)
        while len(out) < size:
            block = self.plain.read(size - len(out))
            if not block:
                raise BackupFileError(f"{self.opened.path.name} is truncated inside a record")
            out += block
        return bytes(out)

    def _head(self) -> tuple[bytes, int] | None:
        first = self.plain.read(1)
        if not first:
            return None
        (length,) = _LEN.unpack(self._exact(_LEN.size))
        return first, length

    def __iter__(self) -> Iterator[Record]:
        while True:
            head = self._head()
            if head is None:
                return
            kind, length = head
            if kind not in (TABLE, FILE):
                raise BackupFileError(f"{self.opened.path.name}: unexpected record {kind!r}")
            meta = json.loads(self._exact(length))
            self.in_table = True
            yield Record(kind, meta)
            # Whatever the caller did not read of this table is skipped.
            while self.read(BLOCK):
                pass

    def read(self, size: int = -1) -> bytes:
        """Data of the current table; b"" at its end (psycopg2's copy_expert reads this)."""
        if not self.in_table:
            return b""
        while self.left == 0:
            head = self._head()
            if head is None:
                raise BackupFileError(f"{self.opened.path.name} is truncated inside a table")
            kind, length = head
            if kind == END:
                self.in_table = False
                return b""
            if kind != DATA:
                raise BackupFileError(f"{self.opened.path.name}: unexpected record {kind!r}")
            self.left = length
        want = self.left if size is None or size < 0 else min(size, self.left)
        block = self._exact(want)
        self.left -= len(block)
        return block

    def readline(self) -> bytes:  # pragma: no cover - psycopg2 asks only for read()
        raise io.UnsupportedOperation


class _ChunkStream(io.RawIOBase):
    """The decrypted chunks as a stream, for the zstd decompressor."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.rest:
            try:
                self.rest = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.rest))
        buffer[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n


def reseal(opened: Opened, out: BinaryIO, *, key: Key) -> dict[str, Any]:
    """The same backup under another key (key rotation): chunk for chunk the same
    compressed data, so the manifest's table checksums and index stay what they were."""
    header = opened.header
    writer = Writer(out, key=key, kind=str(header["kind"]), created_at=str(header["created_at"]))
    with opened.path.open("rb") as handle:
        for chunk in _chunks(opened, handle):
            writer._seal(chunk)
    written = ("header", "data_chunks", "data_bytes", "data_sha256", "format")
    return writer.finish({k: v for k, v in opened.manifest.items() if k not in written})
