"""Object storage: backups go to an S3-compatible bucket as well, a drill fetches a file
kept only there, and retention deletes it there too. The bucket is moto's S3 server: a
real S3 API over HTTP on a local port, not a mock of our code."""

from __future__ import annotations

import socket
import uuid

import boto3  # type: ignore[import-untyped]
import pytest
from moto.server import ThreadedMotoServer

from backups import storage
from backups.models import RunStatus
from backups.services import backup_create, backup_verify, retention_apply
from tests.backups.conftest import fill, path_of

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "hl-backups"


@pytest.fixture
def bucket(settings, monkeypatch):
    """A bucket of the test's own (moto keeps buckets for the life of the process)."""
    name = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for variable in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(variable, raising=False)
    settings.BACKUP_S3_BUCKET = name
    settings.BACKUP_S3_PREFIX = "prod/"
    settings.BACKUP_S3_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    settings.BACKUP_S3_REGION = "eu-north-1"
    settings.BACKUP_S3_ACCESS_KEY_ID = "backup-writer"
    settings.BACKUP_S3_SECRET_ACCESS_KEY = "not-a-real-secret"
    client = boto3.client(
        "s3",
        endpoint_url=settings.BACKUP_S3_ENDPOINT_URL,
        region_name="eu-north-1",
        aws_access_key_id="backup-writer",
        aws_secret_access_key="not-a-real-secret",
    )
    client.create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
    )
    client.name = name
    yield client
    server.stop()


def test_a_backup_is_stored_in_the_bucket_and_a_drill_can_use_it_from_there(
    live_personas, bucket, settings
):
    fill(live_personas.account_a, label="a")

    run = backup_create(kind="hourly")

    assert run.status == RunStatus.SUCCEEDED, run.error
    item = run.file
    assert item is not None
    assert item.remote == f"s3://{bucket.name}/prod/{item.name}"
    stored = bucket.get_object(Bucket=bucket.name, Key=f"prod/{item.name}")["Body"].read()
    assert stored == path_of(item).read_bytes()

    path_of(item).unlink()  # the disk was lost; the bucket was not
    drill = backup_verify(item=item)

    assert drill.status == RunStatus.SUCCEEDED, drill.error
    assert path_of(item).is_file()


def test_retention_deletes_the_copy_in_the_bucket_too(live_personas, bucket, settings):
    fill(live_personas.account_a, label="a")
    first = backup_create(kind="hourly").file
    assert first is not None
    backup_create(kind="hourly")
    settings.BACKUP_KEEP_HOURLY_HOURS = 0
    settings.BACKUP_KEEP_DAILY_DAYS = 0

    removed = retention_apply()

    assert removed == [first.name]
    names = [o["Key"] for o in bucket.list_objects_v2(Bucket=bucket.name).get("Contents", [])]
    assert f"prod/{first.name}" not in names and len(names) == 1
    assert storage.remote_names() == [names[0].removeprefix("prod/")]


def test_an_unreachable_bucket_fails_the_backup_and_keeps_no_file(
    live_personas, settings, mailoutbox
):
    settings.BACKUP_S3_BUCKET = BUCKET
    settings.BACKUP_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.BACKUP_S3_ACCESS_KEY_ID = "x"
    settings.BACKUP_S3_SECRET_ACCESS_KEY = "y"
    settings.BACKUP_S3_REGION = "eu-north-1"

    run = backup_create(kind="three_hourly")

    assert run.status == RunStatus.FAILED
    assert "upload to s3://hl-backups/" in run.error
    assert not list(storage.backup_dir().glob("*.hlbk"))
    assert len(mailoutbox) == 1
