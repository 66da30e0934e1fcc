"""A local SMTP server that accepts every message and keeps it in a Maildir.

``make run`` uses it when SMTP_URL is not set, so that nothing leaves the machine
and every message the product sends can be read in ``var/mail/``.
"""

from __future__ import annotations

import argparse
import mailbox
import signal
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    def __init__(self, path: Path) -> None:
        self.maildir = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = mailbox.MaildirMessage(envelope.original_content or envelope.content)
        message["X-Heyloyalty-Envelope-From"] = envelope.mail_from
        message["X-Heyloyalty-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.maildir.add(message)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args()

    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    print(
        f"SMTP sink listening on {args.host}:{args.port}, keeping mail in {args.maildir}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
