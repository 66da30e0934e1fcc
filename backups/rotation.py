"""Rotating the system keys (``keys_rotate``): add a key, re-encrypt, retire the old one.

1. A new key (next id, today's date) goes first in its ring.
2. What the old keys protect moves to the new one: every ``*_encrypted`` column (API
   secrets, webhook secrets) for field keys, every retained backup file for backup keys
   (re-sealed, its data untouched). What a secret key signed (sessions, links in mail
   already sent) cannot be re-signed: the old key stays a fallback instead.
3. An old key that nothing needs any more is retired: no row or retained backup names
   it, or (secret keys) it was replaced more than SECRET_KEY_RETIRE_DAYS ago.

Keys kept in files (``NAME_FILE`` for each of the kind's variables) are rewritten in
place, atomically; running processes read field and backup keys again when the file
changes, and a restart puts a new SECRET_KEY in use. Keys kept in the environment cannot
be changed from here: step 1 prints the new values to set (and restart), and
``--finish`` then does steps 2 and 3 and prints what to set once the old key is gone.
Each step is audited ("keys.rotated"), never with a key's value.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction

from backups import container, storage
from backups.models import BackupFile
from heyloyalty import keys
from heyloyalty.keys import Key

Progress = Callable[[str], None]


class RotationError(Exception):
    pass


def _quiet(message: str) -> None:
    pass


@dataclass
class Rotation:
    kind: str
    added: str | None = None
    retired: list[str] = field(default_factory=list)
    reencrypted: int = 0
    kept: list[str] = field(default_factory=list)  # the ring's ids afterwards
    written: list[str] = field(default_factory=list)  # files rewritten
    to_set: dict[str, str] = field(default_factory=dict)  # variables to set by hand
    next_step: str = ""

    def as_dict(self, *, with_values: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "added": self.added,
            "retired": self.retired,
            "reencrypted": self.reencrypted,
            "keys": self.kept,
            "written": self.written,
            "next_step": self.next_step,
        }
        if with_values and self.to_set:
            out["set"] = self.to_set
        return out


# --------------------------------------------------------------------- where they live


def key_files(kind: str) -> dict[str, Path] | None:
    """The files holding the kind's variables, or None when any comes from the
    environment (then nothing can be written from here)."""
    files = {}
    for name in keys.VARIABLES[kind]:
        path = os.environ.get(f"{name}_FILE")
        if name in os.environ or not path:
            return None
        files[name] = Path(path)
    return files


def _read_ring(kind: str, files: dict[str, Path] | None) -> list[Key]:
    if files is None:
        try:
            return list(keys.keys_of(kind))
        except ImproperlyConfigured:
            if kind == keys.BACKUP and not settings.BACKUP_ENCRYPTION_KEYS:
                return []  # the first backup key
            raise

    def text(name: str) -> str:
        path = files[name]
        return path.read_text(encoding="utf-8").strip() if path.exists() else ""

    if kind == keys.SECRET:
        values = [text("SECRET_KEY"), *text("SECRET_KEY_FALLBACKS").split(",")]
        return [keys.secret_key(v.strip()) for v in values if v.strip()]
    name = keys.VARIABLES[kind][0]
    return keys.parse_keys(text(name), name=name)


def _write(files: dict[str, Path], values: dict[str, str]) -> list[str]:
    written = []
    for name, value in values.items():
        path = files[name]
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        written.append(str(path))
    return written


# --------------------------------------------------------------------------- rotate


def keys_rotate(
    *, kind: str, finish: bool = False, actor: Any = None, progress: Progress = _quiet
) -> Rotation:
    if kind not in keys.KINDS:
        raise RotationError(f"--kind must be one of {', '.join(keys.KINDS)}")
    files = key_files(kind)
    ring = _read_ring(kind, files)
    rotation = Rotation(kind)
    if not finish:
        new = keys.generate(kind, ring)
        ring = [new, *ring]
        rotation.added = new.id
        progress(f"new {kind} key {new.id}")
        if files is None:
            rotation.to_set = keys.write_spec(kind, ring)
            rotation.kept = [k.id for k in ring]
            rotation.next_step = (
                f"Set {' and '.join(rotation.to_set)} as printed in every process's "
                f"environment and restart them all; then run `manage.py keys_rotate --kind "
                f"{kind} --finish` to re-encrypt and retire the old key."
            )
            _audit(rotation, actor, stage="added")
            return rotation
        rotation.written = _write(files, keys.write_spec(kind, ring))
    elif not ring:
        raise RotationError(f"there is no {kind} key to finish rotating")
    _move_and_retire(kind, ring, rotation, progress, actor)
    if files is not None:
        rotation.written = sorted(
            set(rotation.written) | set(_write(files, keys.write_spec(kind, _kept(ring, rotation))))
        )
    else:
        rotation.to_set = keys.write_spec(kind, _kept(ring, rotation))
    rotation.kept = [k.id for k in _kept(ring, rotation)]
    rotation.next_step = _next_step(kind, files is not None, rotation)
    return rotation


def _kept(ring: list[Key], rotation: Rotation) -> list[Key]:
    return [k for k in ring if k.id not in rotation.retired]


def _next_step(kind: str, in_files: bool, rotation: Rotation) -> str:
    if kind == keys.SECRET:
        restart = (
            "Restart the web and worker processes: the new key signs from then on"
            if rotation.added
            else "Restart the web and worker processes to drop the retired keys"
        )
        return (
            f"{restart}; an old key still verifies sessions and links already mailed "
            f"for {settings.SECRET_KEY_RETIRE_DAYS} days after it was replaced."
        )
    if not in_files:
        return (
            f"Set {' and '.join(rotation.to_set)} as printed everywhere and restart: "
            "the retired keys are no longer needed."
        )
    return "Done: running processes read the new keys from their files."


def _move_and_retire(
    kind: str, ring: list[Key], rotation: Rotation, progress: Progress, actor: Any
) -> None:
    """Steps 2 and 3, and the audit event, in one transaction."""
    with transaction.atomic():
        if kind == keys.FIELD:
            rotation.reencrypted = reencrypt_fields(ring, progress)
            used = field_key_ids()
        elif kind == keys.BACKUP:
            rotation.reencrypted = reseal_backups(ring, progress)
            used = set(
                BackupFile.objects.filter(deleted_at__isnull=True).values_list("key_id", flat=True)
            )
        else:
            used = _secret_keys_needed(ring)
        rotation.retired = [k.id for k in ring[1:] if k.id not in used]
        if rotation.retired:
            progress(f"retired: {', '.join(rotation.retired)}")
        _audit(rotation, actor, stage="rotated")


def _audit(rotation: Rotation, actor: Any, *, stage: str) -> None:
    from audit.services import record

    record(
        "keys.rotated",
        actor=actor,
        target_type="key",
        target_id=rotation.added or "",
        target_repr=f"{rotation.kind} key",
        extra={
            "kind": rotation.kind,
            "stage": stage,
            "added": rotation.added,
            "retired": rotation.retired,
            "reencrypted": rotation.reencrypted,
        },
    )


# ------------------------------------------------------------------- field secrets


def encrypted_columns() -> list[tuple[type[models.Model], str]]:
    """Every column that holds a value sealed with the field keys: named ``*_encrypted``."""
    found = []
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if model_field.name.endswith("_encrypted") and isinstance(
                model_field, models.CharField | models.TextField
            ):
                found.append((model, model_field.name))
    return found


def reencrypt_fields(ring: list[Key], progress: Progress = _quiet) -> int:
    """Seal every stored secret with the first key; a conditional update per row, so a
    secret changed meanwhile is left as its writer made it (with the new key)."""
    primary = ring[0]
    by_id = {k.id: k.fernet for k in ring}
    anyone = MultiFernet(list(by_id.values()))
    prefix = f"{primary.id}$"
    total = 0
    for model, name in encrypted_columns():
        rows = (
            model._default_manager.exclude(**{f"{name}__startswith": prefix})
            .exclude(**{name: ""})
            .values_list("pk", name)
        )
        count = 0
        for pk, stored in rows.iterator(chunk_size=500):
            key_id, _, token = stored.partition("$")
            fernet = by_id.get(key_id, anyone)
            try:
                plain = fernet.decrypt(token.encode())
            except InvalidToken:
                raise RotationError(
                    f"{model._meta.label} {pk}: no key in the ring opens its {name} "
                    f"(sealed with {key_id!r}); nothing was changed"
                ) from None
            sealed = f"{primary.id}${primary.fernet.encrypt(plain).decode()}"
            count += model._default_manager.filter(pk=pk, **{name: stored}).update(**{name: sealed})
        if count:
            progress(f"  {model._meta.label}.{name}: {count} re-encrypted")
        total += count
    return total


def field_key_ids() -> set[str]:
    """The ids of the field keys that stored secrets name."""
    used: set[str] = set()
    with connection.cursor() as cursor:
        for model, name in encrypted_columns():
            column = model._meta.get_field(name).column  # type: ignore[union-attr]
            cursor.execute(
                f"SELECT DISTINCT split_part(\"{column}\", '$', 1) "  # noqa: S608 - our own names  # nosec B608
                f'FROM "{model._meta.db_table}" WHERE "{column}" <> \'\''
            )
            used.update(row[0] for row in cursor.fetchall())
    return used


# ---------------------------------------------------------------------------- backups


def reseal_backups(ring: list[Key], progress: Progress = _quiet) -> int:
    """Re-seal every retained backup under the first key (same data, same manifest
    checksums), in place and atomically; a file that cannot be reached keeps its key."""
    primary = ring[0]
    count = 0
    for item in BackupFile.objects.filter(deleted_at__isnull=True).exclude(key_id=primary.id):
        path = storage.local_path(item.name)
        if not path.is_file() and item.remote and storage.remote_enabled():
            path = storage.download(item.name)
        if not path.is_file():
            progress(f"  {item.name}: not found, keeps key {item.key_id}")
            continue
        try:
            opened = container.open_backup(path, tuple(ring))
            container.check(opened)
        except container.BackupFileError as error:
            raise RotationError(f"{item.name}: {error}; nothing was retired") from None
        with storage.atomic_file(item.name) as out:
            manifest = container.reseal(opened, out, key=primary)
        from backups.services import file_sha256

        if item.remote and storage.remote_enabled():
            storage.upload(item.name)
        BackupFile.objects.filter(pk=item.pk).update(
            key_id=primary.id,
            manifest=manifest,
            size=path.stat().st_size,
            sha256=file_sha256(path),
        )
        count += 1
        progress(f"  {item.name}: re-sealed with {primary.id}")
    return count


# ----------------------------------------------------------------------- secret keys


def _secret_keys_needed(ring: list[Key]) -> set[str]:
    """The in-use key, and every fallback replaced less than SECRET_KEY_RETIRE_DAYS ago
    (or at an unknown date): links already mailed are signed with them."""
    needed = {ring[0].id}
    limit = keys.retire_after(keys.SECRET)
    today: date = keys.today()
    for index, key in enumerate(ring[1:], start=1):
        replaced = keys.replaced_on(ring, index)
        if replaced is None or today - replaced < limit:
            needed.add(key.id)
    return needed
