import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from audit.verify import parse_head, verify
from heyloyalty.commands import OperationsCommand


class Command(OperationsCommand):
    help = (
        "Recompute the audit log's hash chain and name the first broken or missing row. "
        "Exits 1 when the chain is broken."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--head",
            metavar="SEQ:HASH",
            help="a published chain head (audit-heads.log, the daily mail): that row must "
            "still be there with that hash",
        )
        parser.add_argument(
            "--all", action="store_true", help="go on after the first problem and list them all"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            head = parse_head(options["head"]) if options["head"] else None
        except ValueError as error:
            raise CommandError(f"--head: {error}") from None
        started = time.monotonic()

        def progress(rows: int, seq: int) -> None:
            elapsed = time.monotonic() - started
            self.stderr.write(f"{rows:,} rows checked (seq {seq}), {elapsed:.1f} s")

        result = verify(head=head, stop_at_first=not options["all"], progress=progress)
        seconds = round(time.monotonic() - started, 3)
        if result.ok:
            text = f"OK: {result.rows:,} rows, chain head {result.last_seq}:{result.last_hash}"
            if head is not None:
                text += f"; matches the published head {head[0]}"
        else:
            text = "\n".join(f"BROKEN: {p}" for p in result.problems)
        self.emit(options, {**result.as_dict(), "seconds": seconds}, text)
        if not result.ok:
            raise CommandError(f"the audit chain is broken: {result.problems[0]}")
