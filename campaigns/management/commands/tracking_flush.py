"""Write the buffered opens and clicks to PostgreSQL: ``tracking_flush [--every SECONDS]``.

Beat runs the same flush every few seconds (campaigns.tasks.tracking_flush); this is for
operators (drain the buffer now, e.g. before taking Redis down) and for running a
flusher as a process of its own (``--every 5``), as bench/tracking.py does. Prints what
it wrote; with ``--every`` it goes on until stopped.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from dataclasses import asdict
from typing import Any

from campaigns import tracking
from campaigns.tracking_writer import tracking_flush
from heyloyalty.commands import OperationsCommand


class Command(OperationsCommand):
    help = "Write the buffered opens and clicks to PostgreSQL."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--every", type=float, default=0, help="flush again every SECONDS until stopped"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            result = tracking_flush(max_seconds=60.0)
            if not options["every"] or result.read:
                left = tracking.buffer_length()
                text = (
                    f"wrote {result.inserted} of {result.read} hits in {result.batches} "
                    f"batches; {left} waiting"
                    if result.ran
                    else "another flusher is busy"
                )
                self.emit(options, {**asdict(result), "waiting": left}, text)
            if not options["every"]:
                return
            time.sleep(options["every"])
