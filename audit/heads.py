"""The chain head, published every day outside the database.

Whoever can rewrite the audit table (a database superuser) can also recompute every
hash after the rewrite. What they cannot do is change what was published before: the
head (``seq`` and ``hash`` of the last row) mailed to the technicians and written into
the backups. ``audit_verify --head SEQ:HASH`` checks the table against such a head.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from audit.chain import at_text
from audit.models import GENESIS_HASH, AuditEvent
from heyloyalty.mail import build_message

log = logging.getLogger("heyloyalty.audit")

HEADS_FILE = "audit-heads.log"
TECHNICIANS = "Technicians"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    at: datetime | None  # the time of the last event; None for an empty log

    @property
    def token(self) -> str:
        """What ``audit_verify --head`` takes."""
        return f"{self.seq}:{self.hash}"


def head_current() -> Head:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash", "at").first()
    if last is None:
        return Head(0, GENESIS_HASH, None)
    return Head(*last)


def heads_path() -> Path:
    return Path(settings.BACKUP_DIR) / HEADS_FILE


def head_line(head: Head, published_at: datetime) -> str:
    """One line of audit-heads.log: when published, SEQ:HASH, time of that event."""
    event_at = at_text(head.at) if head.at is not None else "-"
    return f"{at_text(published_at)} {head.token} {event_at}\n"


def recipients() -> list[str]:
    technicians = User.objects.filter(groups__name=TECHNICIANS, is_active=True)
    emails = [*technicians.values_list("email", flat=True), *settings.ALERT_EMAILS]
    return sorted({e.strip().lower() for e in emails if e.strip()})


def head_publish() -> Head:
    """Publish the current head: one line appended to BACKUP_DIR/audit-heads.log
    (flushed to disk), then one mail to the Technicians group and ALERT_EMAILS.
    Harmless to run twice: a second line and a second mail with the same head."""
    head = head_current()
    published_at = timezone.now()
    path = heads_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as heads:
        heads.write(head_line(head, published_at))
        heads.flush()
        os.fsync(heads.fileno())
    to = recipients()
    if not to:
        log.warning(
            "audit chain head %s not mailed: no technicians and no ALERT_EMAILS", head.token
        )
        return head
    event_at = timezone.localtime(head.at).strftime("%Y-%m-%d %H:%M:%S %Z") if head.at else "-"
    text = (
        "The head of the Heyloyalty audit log today:\n\n"
        f"  sequence number: {head.seq}\n"
        f"  hash:            {head.hash}\n"
        f"  last event at:   {event_at}\n\n"
        "Keep this mail. To check the log against it later, run:\n\n"
        f"  manage.py audit_verify --head {head.token}\n\n"
        "If the log was rewritten since, even by a database superuser, that command says so.\n"
    )
    build_message(to=to, subject=f"Heyloyalty audit log head: {head.seq}", text=text).send()
    return head
