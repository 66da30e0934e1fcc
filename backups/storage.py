"""Where backup files live: BACKUP_DIR, and S3-compatible object storage when configured.

A file is written under a temporary name in the same directory, flushed to disk and
renamed: a backup that was not written to the end never has a backup's name. In object
storage a PUT (or a completed multipart upload) is atomic in the same way.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

SUFFIX = ".hlbk"


class StorageError(Exception):
    """Storage refused: a full disk, no space for the next backup, an unreachable bucket."""


def backup_dir() -> Path:
    path = Path(settings.BACKUP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_path(name: str) -> Path:
    return backup_dir() / name


def ensure_room(estimate: int) -> None:
    """Refuse to start a backup that would leave the disk with less than
    BACKUP_MIN_FREE_BYTES: better a clear refusal now than a full disk half-way."""
    free = shutil.disk_usage(backup_dir()).free
    needed = estimate + int(settings.BACKUP_MIN_FREE_BYTES)
    if free < needed:
        raise StorageError(
            f"not enough free space in {backup_dir()}: {free:,} bytes free, a backup needs "
            f"about {estimate:,} bytes and BACKUP_MIN_FREE_BYTES keeps "
            f"{settings.BACKUP_MIN_FREE_BYTES:,} free"
        )


@contextmanager
def atomic_file(name: str) -> Iterator[BinaryIO]:
    """A file that appears under ``name`` only once the block finished without error."""
    final = local_path(name)
    partial = final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
        _fsync_dir(final.parent)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise StorageError(f"the disk holding {final.parent} is full") from error
        raise
    finally:
        partial.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_local(name: str) -> None:
    local_path(name).unlink(missing_ok=True)


# ------------------------------------------------------------------ object storage


def remote_enabled() -> bool:
    return bool(settings.BACKUP_S3_BUCKET)


def _client() -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=settings.BACKUP_S3_ENDPOINT_URL or None,
        region_name=settings.BACKUP_S3_REGION or None,
        aws_access_key_id=settings.BACKUP_S3_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.BACKUP_S3_SECRET_ACCESS_KEY or None,
    )


def remote_key(name: str) -> str:
    return f"{settings.BACKUP_S3_PREFIX}{name}"


def remote_url(name: str) -> str:
    return f"s3://{settings.BACKUP_S3_BUCKET}/{remote_key(name)}"


def upload(name: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        _client().upload_file(str(local_path(name)), settings.BACKUP_S3_BUCKET, remote_key(name))
    except (BotoCoreError, ClientError) as error:
        raise StorageError(f"upload to {remote_url(name)} failed: {error}") from error
    return remote_url(name)


def download(name: str) -> Path:
    """Fetch a file kept only in object storage into BACKUP_DIR (atomically)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with atomic_file(name) as handle:
            _client().download_fileobj(settings.BACKUP_S3_BUCKET, remote_key(name), handle)
    except (BotoCoreError, ClientError) as error:
        raise StorageError(f"download of {remote_url(name)} failed: {error}") from error
    return local_path(name)


def remove_remote(name: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client().delete_object(Bucket=settings.BACKUP_S3_BUCKET, Key=remote_key(name))
    except (BotoCoreError, ClientError) as error:
        raise StorageError(f"deleting {remote_url(name)} failed: {error}") from error


def remote_names() -> list[str]:
    paginator = _client().get_paginator("list_objects_v2")
    names = []
    for page in paginator.paginate(
        Bucket=settings.BACKUP_S3_BUCKET, Prefix=settings.BACKUP_S3_PREFIX
    ):
        for item in page.get("Contents", []):
            names.append(str(item["Key"])[len(settings.BACKUP_S3_PREFIX) :])
    return names
