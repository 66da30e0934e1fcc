"""The key ring: the system keys, where they come from, and their ids and ages.

Three kinds of key, each a list newest first; the first one is in use and the others
are kept only to open (or verify) what an older key made:

- ``secret``: ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` (Django's own settings). They
  sign sessions, password-reset links and every link in mail already sent (campaigns/
  tokens.py verifies with the fallbacks too), so an old secret key stays a fallback for
  ``SECRET_KEY_RETIRE_DAYS`` after it was replaced.
- ``field``: ``FIELD_ENCRYPTION_KEYS``, Fernet keys for API secrets and other reversible
  secrets in the database (``encrypt``/``decrypt``; each value names its key).
- ``backup``: ``BACKUP_ENCRYPTION_KEYS``, AES-256-GCM keys for backup files (backups/
  container.py); each file names its key.

Keys come from the environment or from files (``NAME_FILE``), never from the database.
A field or backup key is written ``id:YYYY-MM-DD:key`` (``id:key`` is still read, with no
creation date), ``key`` being 32 url-safe base64-encoded bytes. A secret key made by
``keys_rotate`` is itself ``id:YYYY-MM-DD:random``, so the id and date travel with it;
any other secret key gets an id from a fingerprint and no date.

When the keys come from files, a process sees a rotation without a restart for field and
backup keys (the files are read again when they change); Django reads ``SECRET_KEY``
once, so a secret rotation takes effect at the next restart, while the old key keeps
working as a fallback.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

SECRET = "secret"  # noqa: S105 - the name of a kind of key, not a key
FIELD = "field"
BACKUP = "backup"
KINDS = (SECRET, FIELD, BACKUP)

# The variables of each kind: the keys in use, newest first.
VARIABLES = {
    SECRET: ("SECRET_KEY", "SECRET_KEY_FALLBACKS"),
    FIELD: ("FIELD_ENCRYPTION_KEYS",),
    BACKUP: ("BACKUP_ENCRYPTION_KEYS",),
}
_PREFIX = {SECRET: "s", FIELD: "f", BACKUP: "b"}

_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
_DATED_SECRET = re.compile(rf"^({_ID}):(\d{{4}}-\d{{2}}-\d{{2}}):(.{{40,}})$", re.DOTALL)


@dataclass(frozen=True)
class Key:
    """One key. ``material`` is the secret itself: never logged, shown or stored."""

    id: str
    material: str
    created: date | None = None

    def __repr__(self) -> str:  # never the material, also not in a traceback
        return f"Key({self.id!r}, created={self.created})"

    @property
    def fernet(self) -> Fernet:
        return _fernet(self.material)

    @property
    def raw(self) -> bytes:
        """The 32 bytes of a field or backup key."""
        return base64.urlsafe_b64decode(self.material.encode())

    def spec(self) -> str:
        """How the key is written in its variable."""
        if self.created is None:
            return f"{self.id}:{self.material}"
        return f"{self.id}:{self.created.isoformat()}:{self.material}"


@lru_cache(maxsize=32)
def _fernet(material: str) -> Fernet:
    return Fernet(material.encode())


def parse_keys(spec: str, *, name: str) -> list[Key]:
    """``id:key`` or ``id:YYYY-MM-DD:key`` pairs, comma-separated, newest first."""
    keys = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or not all(parts) or not re.fullmatch(_ID, parts[0]):
            raise ImproperlyConfigured(
                f"{name}: each key is written id:YYYY-MM-DD:key (or id:key), got {item[:8]}…"
            )
        created = _date(parts[1], name=name, key_id=parts[0]) if len(parts) == 3 else None
        material = parts[-1]
        if not _is_32_bytes(material):
            raise ImproperlyConfigured(
                f"{name}: key {parts[0]!r} is not 32 url-safe base64-encoded bytes"
            )
        keys.append(Key(parts[0], material, created))
    ids = [k.id for k in keys]
    if len(set(ids)) != len(ids):
        raise ImproperlyConfigured(f"{name}: key ids must be unique")
    return keys


def _date(text: str, *, name: str, key_id: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}: key {key_id!r} has a creation date that is not YYYY-MM-DD: {text!r}"
        ) from None


def _is_32_bytes(material: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(material.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def new_key_spec(key_id: str) -> str:
    return Key(key_id, Fernet.generate_key().decode(), today()).spec()


def today() -> date:
    return timezone.localdate()


# ------------------------------------------------------------------ where keys come from


def _from_env_or_file(name: str, fallback: str) -> str:
    """A file named by ``NAME_FILE`` is read again whenever it changes, so a rotation
    written by ``keys_rotate`` reaches running processes; otherwise the setting."""
    path = os.environ.get(f"{name}_FILE")
    if path and name not in os.environ:
        try:
            stat = os.stat(path)
        except OSError as error:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {error}") from None
        return _read_file(path, stat.st_mtime_ns, stat.st_size)
    return fallback


@lru_cache(maxsize=8)
def _read_file(path: str, mtime_ns: int, size: int) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


@lru_cache(maxsize=8)
def _parsed(spec: str, name: str) -> tuple[Key, ...]:
    return tuple(parse_keys(spec, name=name))


def field_keys() -> tuple[Key, ...]:
    spec = _from_env_or_file("FIELD_ENCRYPTION_KEYS", settings.FIELD_ENCRYPTION_KEYS)
    keys = _parsed(spec, "FIELD_ENCRYPTION_KEYS")
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is not set")
    return keys


def backup_keys() -> tuple[Key, ...]:
    spec = _from_env_or_file("BACKUP_ENCRYPTION_KEYS", settings.BACKUP_ENCRYPTION_KEYS)
    keys = _parsed(spec, "BACKUP_ENCRYPTION_KEYS")
    if not keys:
        raise ImproperlyConfigured(
            "BACKUP_ENCRYPTION_KEYS is not set: backups are always encrypted. Make one with "
            "`manage.py keys_rotate --kind backup` or set it to id:YYYY-MM-DD:key."
        )
    return keys


def secret_keys() -> tuple[Key, ...]:
    """``SECRET_KEY`` then ``SECRET_KEY_FALLBACKS``, as the running process uses them."""
    return tuple(
        secret_key(value) for value in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    )


def secret_key(value: str) -> Key:
    match = _DATED_SECRET.match(value)
    if match:
        try:
            return Key(match[1], value, date.fromisoformat(match[2]))
        except ValueError:
            pass
    fingerprint = sha256(b"heyloyalty.keys.id" + value.encode()).hexdigest()[:8]
    return Key(f"s-{fingerprint}", value, None)


def keys_of(kind: str) -> tuple[Key, ...]:
    return {SECRET: secret_keys, FIELD: field_keys, BACKUP: backup_keys}[kind]()


# ------------------------------------------------------------------------ field secrets


def encrypt(plain: str) -> str:
    """``<key id>$<fernet token>``: the id says which key can open it."""
    primary = field_keys()[0]
    return f"{primary.id}${primary.fernet.encrypt(plain.encode()).decode()}"


def decrypt(stored: str) -> str:
    key_id, _, token = stored.partition("$")
    keys = {k.id: k.fernet for k in field_keys()}
    fernet = keys.get(key_id)
    try:
        if fernet is not None:
            return fernet.decrypt(token.encode()).decode()
        # An unknown id (a key renamed by hand): try them all.
        return MultiFernet(list(keys.values())).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            f"no key in FIELD_ENCRYPTION_KEYS opens a secret sealed with {key_id!r}"
        ) from None


def key_id_of(stored: str) -> str:
    """The id of the field key a stored secret was sealed with."""
    return stored.partition("$")[0]


# ------------------------------------------------------------------------- rotation


def next_id(kind: str, existing: Iterable[Key]) -> str:
    """``f3`` after ``f2`` (or after ``k1``: ids made by hand keep their numbers;
    fingerprint ids of hand-made secret keys count for nothing)."""
    numbers = [int(m[1]) for k in existing if (m := re.fullmatch(r"[A-Za-z]+(\d+)", k.id))]
    return f"{_PREFIX[kind]}{max(numbers, default=0) + 1}"


def generate(kind: str, existing: Iterable[Key]) -> Key:
    existing = list(existing)
    key_id = next_id(kind, existing)
    if kind == SECRET:
        material = base64.urlsafe_b64encode(os.urandom(48)).decode().rstrip("=")
        return secret_key(f"{key_id}:{today().isoformat()}:{material}")
    return Key(key_id, Fernet.generate_key().decode(), today())


def write_spec(kind: str, keys: list[Key]) -> dict[str, str]:
    """The variables' values for this ring, newest first."""
    if kind == SECRET:
        return {
            "SECRET_KEY": keys[0].material,
            "SECRET_KEY_FALLBACKS": ",".join(k.material for k in keys[1:]),
        }
    return {VARIABLES[kind][0]: ",".join(k.spec() for k in keys)}


def replaced_on(keys: tuple[Key, ...] | list[Key], index: int) -> date | None:
    """When the key at ``index`` stopped being the one in use: the newer key's date."""
    return keys[index - 1].created if index > 0 else None


# --------------------------------------------------------------------------- ages


@dataclass(frozen=True)
class KeyAge:
    """What the admin panel and the reminder show of a key: never its value."""

    kind: str
    id: str
    created: date | None
    in_use: bool  # the first of its kind: it signs or encrypts
    age_days: int | None
    due: bool  # in use and older than the rotation period (or of unknown age)


def rotation_days() -> int:
    return int(settings.KEY_ROTATION_DAYS)


def ages(*, on: date | None = None) -> list[KeyAge]:
    """Every key of every kind, with its age; a kind that is not configured is skipped."""
    on = on or today()
    rows: list[KeyAge] = []
    for kind in KINDS:
        try:
            keys = keys_of(kind)
        except ImproperlyConfigured:
            continue
        for index, key in enumerate(keys):
            age = (on - key.created).days if key.created else None
            due = index == 0 and (age is None or age >= rotation_days())
            rows.append(KeyAge(kind, key.id, key.created, index == 0, age, due))
    return rows


def overdue(*, on: date | None = None) -> list[KeyAge]:
    return [row for row in ages(on=on) if row.due]


def retire_after(kind: str) -> timedelta:
    """How long an old secret key still verifies what it signed (links in mail)."""
    return timedelta(days=int(settings.SECRET_KEY_RETIRE_DAYS)) if kind == SECRET else timedelta()
