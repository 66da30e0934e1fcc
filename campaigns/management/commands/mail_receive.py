"""Mail to the bounce domain, piped in by the MTA: ``mail_receive --recipient ADDR < message``.

- ``bounces+<bounce token>@BOUNCE_DOMAIN`` (the VERP envelope sender of every campaign
  message): a delivery status notification (RFC 3464) is a hard bounce for a 5.x.x
  status and a soft one for 4.x.x; a feedback report (RFC 5965, ``abuse``) is a
  complaint. Anything else that comes back there (an out-of-office reply, a "we got your
  mail" ticket) is ignored.
- ``unsubscribe+<unsubscribe token>@BOUNCE_DOMAIN`` (the List-Unsubscribe mailto): the
  member is unsubscribed.

Exit status, for Postfix's pipe transport: 0 when the message was handled or is to be
dropped (a bad token, an auto-reply: bouncing a bounce helps no one), 75 (EX_TEMPFAIL,
"try again later") when the database cannot be reached or something unexpected broke,
so that nothing is lost. Never a traceback.
"""

from __future__ import annotations

import email
import email.policy
import re
import sys
from argparse import ArgumentParser
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from typing import Any, BinaryIO

from django.core.management.base import CommandError
from django.db import DatabaseError

from campaigns.bounces import bounce_record
from campaigns.models import BounceKind, Delivery
from campaigns.tokens import bounce_read, unsubscribe_read
from campaigns.unsubscribe import member_unsubscribe
from heyloyalty.commands import OperationsCommand
from members.models import Member

EX_TEMPFAIL = 75
MAX_BYTES = 30 * 1024 * 1024
# Where the MTA says the message was for when --recipient is missing.
RECIPIENT_HEADERS = ("X-Original-To", "Delivered-To", "To")
OUR_ADDRESS = re.compile(r"^(bounces|unsubscribe)\+([A-Za-z0-9_-]{1,200})@", re.IGNORECASE)
STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")
# The first SMTP status in a Diagnostic-Code: "smtp; 550 5.1.1 …", "smtp; 452 …".
SMTP_STATUS = re.compile(r"(?:^|[\s;])([245])(?:\.\d{1,3}\.\d{1,3}|\d\d)(?=[\s\-:;,]|$)")
NOT_FAILED = {"delivered", "relayed", "expanded"}
AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")


@dataclass
class Outcome:
    action: str  # bounce, complaint, unsubscribe, ignored
    recipient: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # for stderr: the message could not be used

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "recipient": self.recipient, **self.details}


class Command(OperationsCommand):
    help = (
        "Handle a message piped in by the MTA for bounces+TOKEN@ (a bounce or complaint) "
        "or unsubscribe+TOKEN@ (a mailto unsubscribe)."
    )
    # Tests hand the message in as `stdin`, as Django's own commands allow.
    stealth_options = ("stdin",)
    # One process per message: start fast (the checks run with every other command).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--recipient",
            default="",
            help="the envelope recipient (Postfix: ${recipient}); else read from "
            "X-Original-To, Delivered-To or To",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stream: BinaryIO = options.get("stdin") or sys.stdin.buffer
        try:
            raw = stream.read(MAX_BYTES)
            message = email.message_from_bytes(
                raw if isinstance(raw, bytes) else str(raw).encode(), policy=email.policy.compat32
            )
            outcome = receive(message, options["recipient"])
        except DatabaseError as error:
            raise CommandError(
                f"database unavailable, try again later: {error}", returncode=EX_TEMPFAIL
            ) from None
        except Exception as error:  # a bug must defer the message, not lose it
            raise CommandError(
                f"could not handle the message ({type(error).__name__}: {error})",
                returncode=EX_TEMPFAIL,
            ) from None
        if outcome.problem:
            self.stderr.write(f"mail_receive: {outcome.problem}; the message is dropped")
        self.emit(options, outcome.as_dict(), outcome.text)


def receive(message: Message, recipient: str) -> Outcome:
    address, match = _our_address(message, recipient)
    if match is None:
        return Outcome(
            "ignored",
            address,
            "ignored: not addressed to bounces+… or unsubscribe+…",
            {"reason": "unknown recipient"},
            problem=f"{address or 'no recipient'} is not a bounce or unsubscribe address",
        )
    kind, token = match.group(1).lower(), match.group(2)
    if kind == "unsubscribe":
        return _unsubscribe(address, token)
    return _bounce(message, address, token)


def _our_address(message: Message, given: str) -> tuple[str, re.Match[str] | None]:
    candidates = [given.strip()] if given.strip() else []
    for header in RECIPIENT_HEADERS:
        candidates += [addr for _, addr in getaddresses(message.get_all(header, []))]
    for candidate in candidates:
        match = OUR_ADDRESS.match(candidate)
        if match:
            return candidate, match
    return (candidates[0] if candidates else ""), None


def _bad_token(address: str) -> Outcome:
    return Outcome(
        "ignored",
        address,
        "ignored: the token is not valid",
        {"reason": "bad token"},
        problem=f"{address} carries a token that is not ours or is damaged",
    )


# ------------------------------------------------------------------ unsubscribe


def _unsubscribe(address: str, token: str) -> Outcome:
    target = unsubscribe_read(token)
    if target is None:
        return _bad_token(address)
    member = (
        Member.objects.select_related("list")
        .filter(pk=target.member_id, obscured_at__isnull=True)
        .first()
    )
    if member is None:
        return Outcome("ignored", address, "ignored: the member is gone", {"reason": "member gone"})
    changed = member_unsubscribe(member=member, campaign_id=target.campaign_id, source="mailto")
    return Outcome(
        "unsubscribe",
        address,
        f"{member.email} unsubscribed from {member.list.name}"
        if changed
        else f"{member.email} was not subscribed to {member.list.name}",
        {"member": str(member.pk), "list": member.list_id, "changed": changed},
    )


# ---------------------------------------------------------------------- bounces


@dataclass(frozen=True)
class Report:
    kind: BounceKind
    reason: str
    final_recipient: str = ""


def _bounce(message: Message, address: str, token: str) -> Outcome:
    delivery_id = bounce_read(token)
    if delivery_id is None:
        return _bad_token(address)
    report = read_report(message)
    if report is None:
        why = "auto-reply" if _is_auto_reply(message) else "not a delivery report"
        return Outcome("ignored", address, f"ignored: {why}", {"reason": why})
    delivery = Delivery.objects.select_related("campaign__account").filter(pk=delivery_id).first()
    if delivery is None:
        return Outcome(
            "ignored", address, "ignored: the delivery is gone", {"reason": "delivery gone"}
        )
    bounce = bounce_record(
        account=delivery.campaign.account,
        email=delivery.email,
        kind=report.kind,
        source="dsn",
        reason=report.reason,
        delivery=delivery,
    )
    action = "complaint" if report.kind == BounceKind.COMPLAINT else "bounce"
    return Outcome(
        action,
        address,
        f"{report.kind} {'complaint' if action == 'complaint' else 'bounce'} "
        f"recorded for {delivery.email}: {report.reason}",
        {
            "kind": str(report.kind),
            "email": delivery.email,
            "delivery": delivery.pk,
            "bounce": bounce.pk,
            "reason": report.reason,
        },
    )


def read_report(message: Message) -> Report | None:
    """The delivery failure (RFC 3464) or abuse report (RFC 5965) the message carries,
    or None for anything else, including a report that says the mail was delivered."""
    if message.get_content_type() != "multipart/report" or not message.is_multipart():
        return None
    for part in message.get_payload():
        if not isinstance(part, Message):
            continue
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            return _delivery_status(_blocks(part))
        if ctype == "message/feedback-report":
            return _feedback(_blocks(part))
    return None


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a report part (Python splits message/delivery-status
    itself; the others are read here)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [HeaderParser().parsestr(chunk.strip() + "\n") for chunk in chunks if chunk.strip()]


def _one_line(value: object) -> str:
    return " ".join(str(value or "").split())


def _delivery_status(blocks: list[Message]) -> Report | None:
    """The first recipient that failed. 5.x.x: hard; 4.x.x (given up or delayed): soft."""
    for block in blocks:
        action = _one_line(block.get("Action")).lower()
        if not action or action in NOT_FAILED:
            continue
        status = STATUS.match(_one_line(block.get("Status")))
        diagnostic = _one_line(block.get("Diagnostic-Code"))
        klass = status.group(1) if status else None
        if klass is None and (smtp := SMTP_STATUS.search(diagnostic)):
            klass = smtp.group(1)
        if klass == "2":
            continue
        hard = klass == "5" and action == "failed"
        reason = diagnostic or f"{action} {status.group(0) if status else ''}".strip()
        return Report(
            BounceKind.HARD if hard else BounceKind.SOFT,
            reason[:2000],
            _address(block.get("Final-Recipient")),
        )
    return None


def _feedback(blocks: list[Message]) -> Report | None:
    for block in blocks:
        feedback_type = _one_line(block.get("Feedback-Type")).lower()
        if feedback_type == "abuse":
            agent = _one_line(block.get("User-Agent"))
            reason = f"abuse report{f' ({agent})' if agent else ''}"
            return Report(BounceKind.COMPLAINT, reason, _address(block.get("Original-Rcpt-To")))
    return None


def _address(value: object) -> str:
    """``rfc822; someone@example.com`` -> ``someone@example.com``."""
    return _one_line(value).rsplit(";", 1)[-1].strip().strip("<>")


def _is_auto_reply(message: Message) -> bool:
    auto = _one_line(message.get("Auto-Submitted")).lower()
    precedence = _one_line(message.get("Precedence")).lower()
    return (
        (bool(auto) and auto != "no")
        or precedence in ("auto_reply", "bulk", "junk")
        or any(message.get(h) for h in AUTO_REPLY_HEADERS)
    )
