"""``manage.py watchdog [--once] [--for SECONDS] [--json]``: README "Monitoring"."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from argparse import ArgumentParser
from typing import Any

from django.conf import settings

from heyloyalty.commands import OperationsCommand
from monitoring.watchdog import PassResult, run_pass

log = logging.getLogger("heyloyalty.monitoring")


class Command(OperationsCommand):
    help = (
        "Check the database, Redis, workers, beat, the mail relay and the beat jobs; alert "
        "the technicians and open or close the incident. Runs until stopped, every "
        "MONITOR_WATCHDOG_SECONDS, unless --once or --for is given."
    )
    # It must start when the things it watches are broken.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument(
            "--for",
            dest="duration",
            type=float,
            default=None,
            metavar="SECONDS",
            help="run passes for this long, then exit (for a cron entry or a timer)",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between passes (default MONITOR_WATCHDOG_SECONDS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            result = run_pass()
            self.emit(options, result.as_dict(), _line(result))
            return
        interval = options["interval"] or settings.MONITOR_WATCHDOG_SECONDS
        until = time.monotonic() + options["duration"] if options["duration"] else None
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = run_pass()
            except Exception:  # the watchdog keeps watching; the next pass tries again
                log.exception("watchdog pass failed")
            else:
                text = json.dumps(result.as_dict(), default=str) if options["json"] else None
                self.stdout.write(text or _line(result))
                self.stdout.flush()
            if until is not None and time.monotonic() + interval > until:
                break
            stop.wait(max(0.0, interval - (time.monotonic() - started)))


def _line(result: PassResult) -> str:
    failing = [c.name for c in result.checks if c.failing]
    state = "FAIL " + ", ".join(failing) if failing else "ok"
    extra = []
    if result.opened:
        extra.append("incident opened")
    if result.closed:
        extra.append("incident closed")
    if result.sent:
        extra.append("sent " + " ".join(result.sent))
    return f"{result.at:%Y-%m-%d %H:%M:%S} {state}" + (f" ({'; '.join(extra)})" if extra else "")
