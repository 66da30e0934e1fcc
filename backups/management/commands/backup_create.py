from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from backups import services
from backups.management.commands._progress import progress
from backups.models import BackupKind, RunStatus
from heyloyalty.commands import OperationsCommand


class Command(OperationsCommand):
    help = "Make one backup now: the hourly set of tables or the three-hourly one."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--kind", choices=[k.value for k in BackupKind], default=BackupKind.HOURLY.value
        )

    def handle(self, *args: Any, **options: Any) -> None:
        run = services.backup_create(kind=options["kind"], progress=progress(self, options))
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"the backup failed: {run.error}")
        assert run.file is not None  # noqa: S101 - a successful run has its file
        self.emit(
            options,
            {
                "run": run.pk,
                "status": run.status,
                "file": run.file.name,
                "path": str(services.storage.local_path(run.file.name)),
                "remote": run.file.remote,
                "kind": run.kind,
                "key_id": run.file.key_id,
                "rows": run.rows,
                "size": run.size,
                "duration": run.duration,
                "tables": {t["name"]: t["rows"] for t in run.file.manifest["tables"]},
            },
            f"done in {run.duration:.1f} s: {services.storage.local_path(run.file.name)}",
        )
