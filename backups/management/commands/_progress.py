"""What the backup commands share: progress lines for an operator watching."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import OutputWrapper


def progress(command: Any, options: dict[str, Any]) -> Callable[[str], None]:
    """Progress on stdout, or on stderr when stdout is for the one JSON object."""
    out: OutputWrapper = command.stderr if options.get("json") else command.stdout
    started = time.monotonic()

    def say(message: str) -> None:
        out.write(f"[{time.monotonic() - started:6.1f} s] {message}")
        if out is command.stdout:
            sys.stdout.flush()

    return say
