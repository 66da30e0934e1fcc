from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from backups.management.commands._progress import progress
from backups.rotation import RotationError, keys_rotate
from heyloyalty import keys
from heyloyalty.commands import OperationsCommand


class Command(OperationsCommand):
    help = (
        "Rotate a system key: add a new one, re-encrypt what the old one protects, and "
        "retire the old one once nothing needs it (README, 'Backups and keys')."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--kind", choices=keys.KINDS, required=True)
        parser.add_argument(
            "--finish",
            action="store_true",
            help="keys in the environment: after setting the new key everywhere, re-encrypt "
            "and retire the old one",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rotation = keys_rotate(
                kind=options["kind"], finish=options["finish"], progress=progress(self, options)
            )
        except (RotationError, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None
        lines = [
            f"{rotation.kind} keys now: {', '.join(rotation.kept)}"
            + (f" (added {rotation.added})" if rotation.added else ""),
            f"re-encrypted: {rotation.reencrypted}; "
            f"retired: {', '.join(rotation.retired) or 'none'}",
        ]
        lines += [f"wrote {path}" for path in rotation.written]
        if rotation.to_set:
            lines.append("Set these (secret: do not paste them into a ticket or a chat):")
            lines += [f"{name}={value}" for name, value in rotation.to_set.items()]
        lines.append(rotation.next_step)
        self.emit(options, rotation.as_dict(with_values=True), "\n".join(lines))
