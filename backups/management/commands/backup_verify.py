import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from backups import services
from backups.management.commands._progress import progress
from backups.models import BackupFile, BackupKind, RestoreRun, RunStatus
from heyloyalty.commands import OperationsCommand


class Command(OperationsCommand):
    help = (
        "A restore drill: restore a backup file (by default the newest of each kind) into a "
        "scratch database and compare its row counts and checksums with the manifest."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("file", nargs="?", type=Path, metavar="FILE")

    def handle(self, *args: Any, **options: Any) -> None:
        say = progress(self, options)
        runs: list[RestoreRun] = []
        if options["file"] is not None:
            runs.append(services.backup_verify(path=options["file"], progress=say))
        else:
            for kind in BackupKind:
                item = BackupFile.objects.filter(kind=kind, deleted_at__isnull=True).first()
                if item is not None:
                    runs.append(services.backup_verify(item=item, progress=say))
            if not runs:
                raise CommandError("there is no backup to verify yet")
        failed = [r for r in runs if r.status != RunStatus.SUCCEEDED]
        result = {
            "ok": not failed,
            "drills": [
                {
                    "run": r.pk,
                    "file": r.file_names[0] if r.file_names else "",
                    "status": r.status,
                    "error": r.error,
                    "duration": r.duration,
                    "tables": r.result.get("tables", []),
                }
                for r in runs
            ],
        }
        if failed:
            if options["json"]:
                self.stdout.write(json.dumps(result, default=str))
            raise CommandError("; ".join(f"{r.file_names[0]}: {r.error}" for r in failed))
        self.emit(
            options,
            result,
            "\n".join(
                f"{r.file_names[0]}: restored and matches its manifest "
                f"({r.rows:,} rows, {r.duration:.1f} s)"
                for r in runs
            ),
        )
