from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from backups import services
from backups.management.commands._progress import progress
from backups.restore import RestoreError
from heyloyalty.commands import OperationsCommand


class Command(OperationsCommand):
    help = (
        "Restore backup files: the whole database into an empty one (give the three-hourly "
        "and the hourly file), or one account (--account) into a database that holds others."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("files", nargs="+", metavar="FILE", type=Path)
        parser.add_argument(
            "--database-url",
            default="",
            metavar="URL",
            help="restore into this database instead of the app's (an empty one is migrated)",
        )
        parser.add_argument(
            "--account", type=int, metavar="ID", help="restore only this account's rows"
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="empty the tables in the backup first (a database that is not empty)",
        )
        parser.add_argument(
            "--extract", type=Path, metavar="DIR", help="write the files the backup carries here"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["account"] is not None and options["replace"]:
            raise CommandError("--replace restores whole tables; it does not go with --account")
        try:
            run = services.backup_restore(
                paths=options["files"],
                database_url=options["database_url"],
                account_id=options["account"],
                replace=options["replace"],
                extract_dir=options["extract"],
                progress=progress(self, options),
            )
        except RestoreError as error:
            raise CommandError(str(error)) from None
        self.emit(
            options,
            {
                "run": run.pk,
                "status": run.status,
                "into": run.target,
                "account": run.account_id,
                "rows": run.rows,
                "duration": run.duration,
                **run.result,
            },
            f"restored {run.rows:,} rows into {run.target} in {run.duration:.1f} s"
            + "".join(
                f"\n  skipped {count:,} rows of {name} (their parent is not in the backup)"
                for name, count in run.result.get("skipped", {}).items()
            ),
        )
