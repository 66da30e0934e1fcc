"""Base for the operations commands (DESIGN.md: a stable contract).

Each takes ``--json`` and then prints exactly one JSON object on stdout; errors go to
stderr with a non-zero exit (Django's CommandError).
"""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class OperationsCommand(BaseCommand):
    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def emit(self, options: dict[str, Any], result: dict[str, Any], text: str) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(result, default=str))
        else:
            self.stdout.write(text)


def validation_error(error: ValidationError) -> CommandError:
    """A model or password validation error as a readable command error."""
    if hasattr(error, "error_dict"):
        parts = [
            f"{field}: {' '.join(m for e in errs for m in e.messages)}"
            for field, errs in error.error_dict.items()
        ]
        return CommandError("; ".join(parts))
    return CommandError(" ".join(error.messages))
