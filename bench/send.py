"""Sending benchmark (issue 4): a campaign through the real pipeline to Postfix's smtp-sink.

    .venv/bin/python bench/send.py [--recipients 1000000] [--concurrency 2]

1. Recreate our own database (``bench_send`` on 127.0.0.1:5432) and migrate it; make an
   account with a verified sender domain, a list, its members (COPY, 50,000 rows a
   statement, then VACUUM ANALYZE as autovacuum would) and a draft campaign to the list:
   an 8 KB HTML body with 3 merge tags, 5 tracked links, an unsubscribe link and the
   open pixel, the text part generated from it.
2. Start ``smtp-sink`` (Postfix's test server: it takes each message and throws it away)
   on a port of our own, and read its running counter as it writes it, so we know when
   each message arrived and how many did.
3. The floor: build 1,000 messages the way the pipeline does (the same template, values,
   headers and size) and send ``--baseline`` of them with a bare smtplib loop over one
   connection, then from 2 processes with a connection each, to the same sink.
4. Start a Celery worker as the Procfile does (prefork, one process per core) on a queue of
   our own, call ``campaign_start`` ("send") and poll until the campaign is seen ``sent``
   (every 0.02 s while the Delivery rows are written and after the last message),
   sampling the worker's RSS (all its processes) every 0.2 s with the count at the sink,
   and counting the CPU seconds of our processes and of everyone else's: the machine is
   shared, and a time means little without the quiet it was measured in. ``--profile``
   also records the worker with py-spy and says where its processes' time went.
5. Print the figures against the targets; check that every member has exactly one 'sent'
   Delivery row, that the sink counted exactly one message per recipient, and the
   campaign's own counts; stop every process we started (also on Ctrl-C) and drop our
   database.

Exits 1 when a count is wrong or a target is missed. The 2 s targets are for 100,000
recipients and are only checked up to that size; ``--recipients 1000000`` is the memory
run. ``--concurrency``, ``--parallelism``, ``--batch-size`` and ``--task-seconds`` set the
worker's processes and SEND_PARALLELISM, SEND_BATCH_SIZE, SEND_TASK_SECONDS (unset: the
settings' defaults); ``--database``, ``--queue`` and ``--sink-port`` let two runs share the
machine. Needs Postfix's smtp-sink: ``apt-get install -y postfix``.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import shlex
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, bench/ is sys.path[0]; we need the project

from bench.common import (  # noqa: E402
    PG,
    VENV_BIN,
    CpuAccount,
    RssSampler,
    checkpoint,
    free_port,
    interrupted,
    load_note,
    migrated_database,
    print_logs,
    process,
    stepper,
    stop,
    wait_for,
)

TARGET_RATE = 1_000  # messages/s from "send" to "sent"
AIM_RATE = 2_000
TARGET_RATIO = 0.5  # of the bare smtplib loop over one connection
TARGET_FIRST_S = 2.0  # "send" to the first message at the sink
TARGET_PREPARE_S = 2.0  # every Delivery row committed (started_at to recipients_pending False)
TARGET_SIZE = 100_000  # the size the two 2 s targets are set for
TARGET_RSS_MB = 300  # per worker process
FLAT_MB, FLAT_SHARE = 20, 0.10  # growth allowed after 10% sent: the larger of the two
POLL_SECONDS = 0.25  # while sending: progress only, the times come from the sink and rows
READ_PAUSE_SECONDS = 0.01  # the sink's times are this late at most
FAST_POLL_SECONDS = 0.02  # until the rows are committed, and after the last message
COPY_ROWS = 50_000
BASELINE_DISTINCT = 1_000  # messages built for the smtplib loop, sent round robin
SMTP_SINK = "smtp-sink"

FIRST = ["Søren", "Åse", "Mette", "Jens", "Bjørn", "Ærling", "Sofie", "Mads", "Ida", "Lærke"]
LAST = ["Hansen", "Jørgensen", "Møller", "Sørensen", "Kjær", "Østergaard", "Bæk", "Nielsen"]
DOMAINS = ["gmail.com", "hotmail.com", "mail.dk", "jubii.dk", "firma-aps.dk", "post.tele.dk"]
_ASCII = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"})
SENDER_DOMAIN = "bageren.example"
PUBLIC_URL = "https://mail.heyloyalty.example"


@dataclass
class Tenant:
    account_id: int
    list_id: int
    campaign_id: int
    html_bytes: int


@dataclass
class Baseline:
    message_bytes: float  # mean size of the messages sent
    one_rate: float  # messages/s over one connection
    two_rate: float  # messages/s over two connections from two processes
    one_cpu_ms: float  # CPU per message of client and sink, one connection
    two_cpu_ms: float  # the same, two processes


@dataclass
class Result:
    recipients: int
    status: str
    call_s: float  # campaign_start's own time (its checks, the status change)
    rows_written_s: float  # the first SEND_FIRST_CHUNK rows: prepared_at - started_at
    rows_committed_s: float  # started_at to every row seen (recipients_pending False)
    prepared_s: float  # "send" to every row seen
    first_sink_s: float  # "send" to the first message counted at the sink
    first_sent_at_s: float  # "send" to the first Delivery.sent_at
    finished_at_s: float  # "send" to finished_at (set before the finish commits)
    total_s: float  # "send" to the status 'sent' seen
    sent_span_s: float  # first to last Delivery.sent_at
    peak_rss_mb: float
    peak_process_mb: float
    idle_rss_mb: float
    curve: list[tuple[int, float, float]]  # (percent sent, MB of all, MB of the largest)
    growth_mb: float
    reconnects: int  # SMTP sessions that ended during the send
    cpu_s: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- the campaign


def campaign_html() -> str:
    """About 8 KB of a typical newsletter: layout tables, 3 merge tags, 5 links, a footer
    with the unsubscribe link."""
    paragraph = (
        '<p style="margin:0 0 16px;font-family:Arial,sans-serif;font-size:15px;line-height:'
        '22px;color:#333333">Vi har bagt med smør, kærlighed og gode råvarer siden 1952. '
        "I denne uge får du nyt surdejsbrød, kanelsnegle og årstidens frugttærter, og som "
        "medlem af vores kundeklub får du altid et ekstra godt tilbud.</p>\n"
    )
    links = "".join(
        f'<tr><td style="padding:8px 0"><a href="https://{SENDER_DOMAIN}/tilbud/{n}?utm_source='
        f'heyloyalty&amp;utm_campaign=uge47" style="color:#b5541c;font-weight:bold">Se tilbud '
        f"nummer {n}</a></td></tr>\n"
        for n in range(1, 6)
    )
    head = (
        '<!DOCTYPE html><html lang="da"><head><meta charset="utf-8"><title>Ugens tilbud</title>'
        "<style>body{margin:0;padding:0}table{border-collapse:collapse}</style></head>\n"
        '<body style="margin:0;padding:0;background:#f4efe9">\n<table role="presentation" '
        'width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">\n<table '
        'role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#fff">\n'
        '<tr><td style="padding:24px"><h1 style="font-family:Georgia,serif;color:#b5541c">'
        'Hej {{ firstname | default: "kære kunde" }} {{ lastname }}!</h1></td></tr>\n'
        '<tr><td style="padding:0 24px">\n'
    )
    tail = (
        "</td></tr>\n"
        f"{links}"
        '<tr><td style="padding:24px;font-size:12px;color:#888">Du modtager denne mail på '
        "{{ email }}, fordi du er medlem af kundeklubben. "
        '<a href="{{ unsubscribe_url }}">Afmeld</a>.'
        "</td></tr>\n</table>\n</td></tr></table>\n</body></html>\n"
    )
    room = 8192 - len((head + tail).encode())
    filler = paragraph * (room // len(paragraph.encode()))
    pad = room - len(filler.encode())
    return head + filler + f"<!-- {'x' * max(0, pad - 9)} -->\n" + tail


def member_lines(list_id: int, count: int, seed: int = 4) -> Iterator[str]:
    """COPY text lines for members_member: active, unique lower-case addresses, Danish
    names (5% with no first name, for the tag's fallback)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    now = datetime.now().astimezone().isoformat()
    for n in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{n}@{rng.choice(DOMAINS)}".translate(_ASCII).lower()
        data = (
            {"firstname": first, "lastname": last} if rng.random() >= 0.05 else {"lastname": last}
        )
        payload = json.dumps(data, ensure_ascii=False).replace("\\", "\\\\")
        yield (
            f"{uuid.uuid4()}\t{list_id}\t{email}\t\t{email}\t\\N\t{payload}\tactive\tactive\t"
            f"active\tbench\t\\N\t\\N\t\tf\t\\N\t\\N\t0\t0\t{now}\t{now}\n"
        )


MEMBER_COLUMNS = (
    "id, list_id, email, mobile, email_key, mobile_key, data, status, email_status, "
    "mobile_status, consent_source, consent_ip, consent_at, consent_text, imported, "
    "optin_sent_at, obscured_at, sent_mail, open_rate, created_at, updated_at"
)


def copy_members(dsn: str, list_id: int, count: int) -> None:
    connection = psycopg2.connect(dsn)
    lines = member_lines(list_id, count)
    with connection.cursor() as cursor:
        while chunk := [line for _, line in zip(range(COPY_ROWS), lines, strict=False)]:
            buffer = io.StringIO("".join(chunk))
            cursor.copy_expert(f"COPY members_member ({MEMBER_COLUMNS}) FROM STDIN", buffer)
        connection.commit()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE members_member")
    connection.close()


def set_up_tenant(dsn: str, recipients: int) -> Tenant:
    """An account with a verified sender domain, a list of members, a draft campaign."""
    import django

    django.setup()
    from accounts.models import ManagerAccess
    from accounts.services import account_create
    from campaigns.services import campaign_create, sender_domain_add
    from members.services import list_create

    account = account_create(name="Bageren på Hjørnet ApS", manager_access=ManagerAccess.ALLOWED)
    sender_domain_add(account=account, domain=SENDER_DOMAIN, verified=True)
    member_list = list_create(account=account, name="Kundeklubben")
    copy_members(dsn, member_list.pk, recipients)
    html = campaign_html()
    campaign = campaign_create(
        account=account,
        name="Uge 47",
        subject="Ugens tilbud fra Bageren på Hjørnet",
        preheader="Surdejsbrød, kanelsnegle og frugttærter",
        from_name="Bageren på Hjørnet",
        from_email=f"nyheder@{SENDER_DOMAIN}",
        html=html,
        tracking=True,
        list_ids=[member_list.pk],
    )
    return Tenant(account.pk, member_list.pk, campaign.pk, len(html.encode()))


# ------------------------------------------------------------------------------ the sink


class Sink(threading.Thread):
    """smtp-sink's running counters (``-c``: "sess=S quit=Q mesg=M" and a carriage return
    each time a message or a session ends), read as they are written; times are
    wall-clock, as the database's."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        if child.stdout is None:
            raise ValueError("smtp-sink's output must be a pipe")
        self.stream = child.stdout
        self.count = 0
        self.armed_at = 0  # the count when the send started
        self.first_at: float | None = None  # the first message after that
        self.last_at = 0.0
        self.sessions = self.sessions_armed = 0  # SMTP sessions ended, and when armed

    def run(self) -> None:
        rest = b""
        while chunk := self.stream.read1(65536):  # type: ignore[attr-defined]
            now = time.time()
            *records, rest = (rest + chunk).split(b"\r")
            if not records:
                continue
            fields = dict(pair.split(b"=", 1) for pair in records[-1].split() if b"=" in pair)
            count, self.sessions = int(fields.get(b"mesg", 0)), int(fields.get(b"sess", 0))
            if count != self.count:
                self.count, self.last_at = count, now
                if self.first_at is None and count > self.armed_at:
                    self.first_at = now
            time.sleep(READ_PAUSE_SECONDS)  # a line per message: read them a few at a time

    def arm(self) -> None:
        self.armed_at, self.first_at = self.count, None
        self.sessions_armed = self.sessions

    @property
    def since_armed(self) -> int:
        return self.count - self.armed_at

    def wait_for(self, count: int, timeout: float) -> int:
        """The count once it reached `count` (or stopped short), and then kept still."""
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything more would be a message too many
        return self.count


def sink_command(port: int) -> list[str]:
    found = shutil.which(SMTP_SINK) or shutil.which(SMTP_SINK, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        sys.exit(
            "smtp-sink (from Postfix) is not installed; install it with:\n"
            "    apt-get update && apt-get install -y postfix"
        )
    # As root it must be told whom to run as; it needs no privilege for a high port.
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    return [found, *user, "-c", f"127.0.0.1:{port}", "1000"]


@contextmanager
def sink(port: int, logs: Path) -> Iterator[tuple[subprocess.Popen[bytes], Sink]]:
    errors = (logs / "smtp-sink.log").open("wb")
    child = subprocess.Popen(  # noqa: S603 - our own argv, no shell
        sink_command(port),
        stdout=subprocess.PIPE,
        stderr=errors,
        start_new_session=True,
    )
    reader = Sink(child)
    reader.start()
    try:
        yield child, reader
    finally:
        stop(child)
        errors.close()


# --------------------------------------------------------------------------- the floor


Message = tuple[str, str, bytes]  # envelope sender, recipient, bytes


def build_messages(tenant: Tenant, count: int) -> list[Message]:
    """As campaigns/pipeline.py's sender builds them: the campaign's template with the
    list's fields and fallbacks, the member's values, a tracked delivery, the VERP
    sender, the list-unsubscribe headers, then build_mime."""
    from django.conf import settings

    from campaigns import tokens
    from campaigns.message import build_mime, dkim_sign, make_message_id
    from campaigns.models import Campaign
    from campaigns.templating import compile_campaign
    from campaigns.values import ValueMaker, fallbacks
    from members.models import List, Member
    from members.schema import ListSchema

    campaign = Campaign.objects.get(pk=tenant.campaign_id)
    schema = ListSchema.load(List.objects.get(pk=tenant.list_id))
    compiled = compile_campaign(
        subject=campaign.subject,
        preheader=campaign.preheader,
        html=campaign.html,
        text=campaign.text,
        field_names={*schema.fields, "email", "mobile"},
        fallbacks=fallbacks([schema]),
        tracking=campaign.tracking,
    )
    maker = ValueMaker(schema)
    bounce_domain = getattr(settings, "BOUNCE_DOMAIN", "") or SENDER_DOMAIN
    messages = []
    members = Member.objects.filter(list_id=tenant.list_id).order_by("created_at")[:count]
    for delivery_id, member in enumerate(members, start=1):
        unsubscribe = tokens.unsubscribe_token(member.pk, campaign.pk)
        url = f"{settings.PUBLIC_URL}/u/{unsubscribe}"
        values = maker.values(email=member.email, mobile=member.mobile, data=member.data)
        rendered = compiled.render(values=values, delivery_id=delivery_id, unsubscribe_url=url)
        headers = [
            (
                "List-Unsubscribe",
                f"<{url}>, <mailto:unsubscribe+{unsubscribe}@{bounce_domain}?subject=unsubscribe>",
            ),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("X-Campaign", str(campaign.pk)),
        ]
        raw = dkim_sign(
            build_mime(
                from_name=campaign.from_name,
                from_email=campaign.from_email,
                to=member.email,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                message_id=make_message_id(delivery_id=delivery_id, domain=SENDER_DOMAIN),
                reply_to=campaign.reply_to,
                headers=headers,
            )
        )
        sender = f"bounces+{tokens.bounce_token(delivery_id)}@{bounce_domain}"
        messages.append((sender, member.email, raw))
    return messages


def smtp_loop(port: int, messages: list[Message], count: int, offset: int = 0) -> float:
    """Seconds to send `count` messages over one open connection, as fast as it goes."""
    connection = smtplib.SMTP("127.0.0.1", port)
    connection.ehlo()
    started = time.perf_counter()
    for n in range(offset, offset + count):
        sender, to, raw = messages[n % len(messages)]
        connection.sendmail(sender, [to], raw)
    elapsed = time.perf_counter() - started
    connection.quit()
    return elapsed


def _loop_in_child(port: int, messages: list[Message], count: int, offset: int, gate: Any) -> None:
    connection = smtplib.SMTP("127.0.0.1", port)
    connection.ehlo()
    gate.wait()  # connected: the clock starts when both are
    for n in range(offset, offset + count):
        sender, to, raw = messages[n % len(messages)]
        connection.sendmail(sender, [to], raw)
    connection.quit()


def smtp_loops(port: int, messages: list[Message], count: int, processes: int) -> float:
    """Seconds for `processes` processes with a connection each to send `count` in all."""
    context = multiprocessing.get_context("fork")
    gate = context.Barrier(processes + 1)
    share = count // processes
    children = [
        context.Process(target=_loop_in_child, args=(port, messages, share, n * share, gate))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    try:
        gate.wait(timeout=30)
        started = time.perf_counter()
        for child in children:
            child.join()
        elapsed = time.perf_counter() - started
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join()
    if any(child.exitcode != 0 for child in children):
        raise RuntimeError("a bare smtplib loop failed")
    return elapsed


def run_baseline(tenant: Tenant, port: int, reader: Sink, sink_pid: int, count: int) -> Baseline:
    messages = build_messages(tenant, BASELINE_DISTINCT)
    size = sum(len(raw) for _, _, raw in messages) / len(messages)
    before = reader.count
    evens = count - count % 2
    spent = _cpu_meter(sink_pid)
    start = spent()
    one = smtp_loop(port, messages, count)
    middle = spent()
    two = smtp_loops(port, messages, evens, processes=2)
    end = spent()
    expected = before + count + evens
    if reader.wait_for(expected, timeout=10) != expected:
        raise RuntimeError(f"the sink counted {reader.count - before} of the baseline's messages")
    return Baseline(
        message_bytes=size,
        one_rate=count / one,
        two_rate=evens / two,
        one_cpu_ms=(middle - start) * 1e3 / count,
        two_cpu_ms=(end - middle) * 1e3 / evens,
    )


def _cpu_meter(sink_pid: int) -> Callable[[], float]:
    """CPU seconds so far of this process, its waited-for children and the sink: the
    client and the server of the bare loops, kernel time included."""
    me, sink_process = psutil.Process(), psutil.Process(sink_pid)

    def spent() -> float:
        mine, theirs = me.cpu_times(), sink_process.cpu_times()
        return float(sum(mine[:4]) + theirs.user + theirs.system)  # self and children

    return spent


# ---------------------------------------------------------------------------- the send


def run_send(
    tenant: Tenant,
    recipients: int,
    reader: Sink,
    sampler: RssSampler,
    cpu: CpuAccount,
    timeout: float,
    step: Callable[[str], None],
) -> Result:
    """Send, then poll until the campaign is no longer sending: the time a customer waits."""
    from campaigns.models import Campaign, CampaignStatus
    from campaigns.pipeline import campaign_start

    campaign = Campaign.objects.get(pk=tenant.campaign_id)
    idle = sampler.last
    sampler.reset()
    reader.arm()
    cpu.begin()
    called = time.time()
    campaign_start(campaign=campaign)
    call_s = time.time() - called
    tenth, visible = 1, float("nan")
    polled = Campaign.objects.filter(pk=campaign.pk).values_list(
        "status", "prepared_at", "recipients_pending"
    )
    while True:
        status, prepared_at, pending = polled.get()
        if prepared_at is not None and not pending and visible != visible:  # nan: not yet
            visible = time.time()  # seen once the last of the rows are committed
            step(f"every Delivery row is committed: {visible - called:.2f} s after send")
        if status != CampaignStatus.SENDING:
            seen = time.time()  # "sent" is seen once campaign_finish has committed
            break
        if reader.since_armed >= tenth * recipients / 10:
            step(f"{reader.since_armed:,} messages at the sink")
            tenth = reader.since_armed * 10 // recipients + 1
        if time.time() - called > timeout:
            raise RuntimeError(f"the campaign is still {status} after {timeout:.0f} s")
        closing = prepared_at is None or pending or reader.since_armed >= recipients
        time.sleep(FAST_POLL_SECONDS if closing else POLL_SECONDS)
    cpu_s = cpu.end()
    sampler.done.set()
    campaign.refresh_from_db()
    first_sent, last_sent = _sent_at_range(campaign.pk)
    started = campaign.started_at.timestamp() if campaign.started_at else float("nan")
    prepared = campaign.prepared_at.timestamp() if campaign.prepared_at else float("nan")
    finished = campaign.finished_at.timestamp() if campaign.finished_at else float("nan")
    curve, growth = memory_curve(sampler, recipients)
    return Result(
        recipients=recipients,
        status=campaign.status,
        call_s=call_s,
        rows_written_s=prepared - started,
        rows_committed_s=visible - started,
        prepared_s=visible - called,
        first_sink_s=(reader.first_at or float("nan")) - called,
        first_sent_at_s=first_sent - called,
        finished_at_s=finished - called,
        total_s=seen - called,
        sent_span_s=last_sent - first_sent,
        peak_rss_mb=sampler.peak / 2**20,
        peak_process_mb=sampler.peak_process / 2**20,
        idle_rss_mb=idle / 2**20,
        curve=curve,
        growth_mb=growth,
        reconnects=reader.sessions - reader.sessions_armed,
        cpu_s=cpu_s,
    )


def _sent_at_range(campaign_id: int) -> tuple[float, float]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(sent_at), max(sent_at) FROM campaigns_delivery WHERE campaign_id = %s",
            [campaign_id],
        )
        first, last = cursor.fetchone() or (None, None)
    if first is None or last is None:
        return float("nan"), float("nan")
    return first.timestamp(), last.timestamp()


def memory_curve(
    sampler: RssSampler, recipients: int
) -> tuple[list[tuple[int, float, float]], float]:
    """The worker's memory at 0, 10, …, 100% of the messages at the sink, and how much
    it grew after the 10% point (the first batches load the template, connections…)."""
    samples = sampler.samples
    if not samples:
        return [], float("nan")
    curve = []
    for percent in range(0, 101, 10):
        at = next((s for s in samples if s.progress * 100 >= percent * recipients), samples[-1])
        curve.append((percent, at.total / 2**20, at.largest / 2**20))
    base = next((s for s in samples if s.progress * 10 >= recipients), samples[-1])
    later = [s.total for s in samples if s.at >= base.at]
    return curve, (max(later) - base.total) / 2**20


# ------------------------------------------------------------------------- the profile

# Where a pool process's time goes: a sample counts for the first of these markers found
# anywhere on its stack, so an SMTP write inside a deliver task counts as SMTP. The markers
# are function names in campaigns/sending.py and pipeline.py: one renamed there falls
# through to the next that matches.
PROFILE_KINDS = [
    ("campaign_prepare (", "prepare: INSERT ... SELECT, commit"),
    ("SmtpTransport._connect (", "SMTP: connect"),
    ("smtplib.py", "SMTP: MAIL, RCPT, DATA, message (smtplib)"),
    ("_mark (", "database: mark each message sent"),
    ("_claim (", "database: claim a batch (SKIP LOCKED)"),
    ("check_status (", "database: status check between messages"),
    ("_Sender.outgoing (", "render + build the message"),
    ("campaign_finish (", "finish: count the rows, members' sent_mail"),
    ("campaign_deliver (", "deliver task, other (load, counts, next turn)"),
    ("trace_task (", "Celery: running a task, other"),
]


@contextmanager
def profiling(path: Path | None, pid: int, logs: Path) -> Iterator[None]:
    """py-spy on the worker and its pool processes, waiting time included (--idle)."""
    if path is None:
        yield
        return
    found = shutil.which("py-spy")
    if found is None:
        sys.exit("--profile needs py-spy on PATH: pip install py-spy (into any venv)")
    command = [found, "record", "--pid", str(pid), "--subprocesses", "--idle", "--rate", "100"]
    with process("py-spy", [*command, "--format", "raw", "--output", str(path)], {}, logs) as spy:
        time.sleep(1)  # attached
        try:
            yield
        finally:
            os.killpg(spy.pid, signal.SIGINT)  # py-spy writes the file on Ctrl-C
            spy.wait(timeout=60)


def print_profile(path: Path) -> None:
    """The pool processes' wall time (all samples but the main process's) by kind."""
    kinds: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if len(frames) < 2 or not frames[1].startswith("process "):
            continue  # the main process: the consumer's event loop
        kind = next(
            (name for marker, name in PROFILE_KINDS if any(marker in f for f in frames)),
            "pool process waiting for a task",
        )
        kinds[kind] = kinds.get(kind, 0) + int(samples)
        total += int(samples)
    print(f"\nwhere the pool processes' time went (py-spy, {total:,} samples at 100/s):")
    for kind, count in sorted(kinds.items(), key=lambda item: -item[1]):
        print(f"  {count / total:6.1%}  {kind}")


# ---------------------------------------------------------------------------- the checks


def check_deliveries(tenant: Tenant, recipients: int, reader: Sink) -> list[str]:
    """Every member exactly one 'sent' row, nothing else; the sink one message each."""
    from django.db import connection

    from campaigns.models import Campaign

    problems = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status = 'sent'), "
            "count(DISTINCT member_id) FILTER (WHERE status = 'sent'), "
            "count(*) FILTER (WHERE status <> 'sent') "
            "FROM campaigns_delivery WHERE campaign_id = %s",
            [tenant.campaign_id],
        )
        sent, members, other = cursor.fetchone() or (0, 0, 0)
        cursor.execute(
            "SELECT count(*) FROM members_member m WHERE m.list_id = %s AND NOT EXISTS ("
            "SELECT 1 FROM campaigns_delivery d WHERE d.campaign_id = %s "
            "AND d.member_id = m.id AND d.status = 'sent')",
            [tenant.list_id, tenant.campaign_id],
        )
        (missing,) = cursor.fetchone() or (0,)
    if sent != recipients or members != recipients:
        problems.append(f"{sent:,} 'sent' rows for {members:,} members, expected {recipients:,}")
    if other:
        problems.append(f"{other:,} Delivery rows are not 'sent'")
    if missing:
        problems.append(f"{missing:,} members have no 'sent' Delivery row")
    campaign = Campaign.objects.get(pk=tenant.campaign_id)
    if (campaign.recipients, campaign.sent, campaign.failed) != (recipients, recipients, 0):
        problems.append(
            f"the campaign counts {campaign.recipients:,} recipients, {campaign.sent:,} sent, "
            f"{campaign.failed:,} failed; expected {recipients:,}, {recipients:,}, 0"
        )
    at_sink = reader.wait_for(reader.armed_at + recipients, timeout=10) - reader.armed_at
    if at_sink != recipients:
        problems.append(f"the sink counted {at_sink:,} messages, expected {recipients:,}")
    return problems


# ---------------------------------------------------------------------------- the report


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def report(
    args: argparse.Namespace, sending: dict[str, int], baseline: Baseline, result: Result
) -> list[str]:
    """Print the figures; return the targets missed."""
    n = result.recipients
    rate = n / result.total_s
    span_rate = (n - 1) / result.sent_span_s if result.sent_span_s > 0 else float("nan")
    ratio, ratio_two = rate / baseline.one_rate, rate / baseline.two_rate
    cpu = result.cpu_s
    share = cpu["others"] / (result.total_s * (os.cpu_count() or 1))
    ours = cpu["worker"] + cpu["postgres"] + cpu["sink"]
    timed = n <= TARGET_SIZE
    untimed = f"(target <= {TARGET_FIRST_S:.0f} s for {TARGET_SIZE:,}; not checked at this size)"
    growth_allowed = max(FLAT_MB, FLAT_SHARE * (result.curve[1][1] if result.curve else 0))
    checks = [
        (result.status == "sent", f"the campaign ended {result.status}"),
        (rate >= TARGET_RATE, f"messages/s {rate:,.0f} < {TARGET_RATE:,}"),
        (ratio >= TARGET_RATIO, f"ratio {ratio:.2f} < {TARGET_RATIO}"),
        (
            not timed or result.first_sink_s <= TARGET_FIRST_S,
            f"first message at the sink after {result.first_sink_s:.2f} s > {TARGET_FIRST_S} s",
        ),
        (
            not timed or result.rows_committed_s <= TARGET_PREPARE_S,
            f"Delivery rows committed after {result.rows_committed_s:.2f} s > {TARGET_PREPARE_S} s",
        ),
        (
            result.peak_process_mb <= TARGET_RSS_MB,
            f"a worker process reached {result.peak_process_mb:.0f} MB > {TARGET_RSS_MB} MB",
        ),
        (
            result.growth_mb <= growth_allowed,
            f"worker memory grew {result.growth_mb:.0f} MB after 10% (> {growth_allowed:.0f})",
        ),
    ]
    curve = "  ".join(f"{p}%:{total:.0f}" for p, total, _ in result.curve)
    largest = "  ".join(f"{p}%:{big:.0f}" for p, _, big in result.curve)
    worker = (
        f"prefork, {args.concurrency} processes; SEND_PARALLELISM {sending['parallelism']}, "
        f"SEND_BATCH_SIZE {sending['batch_size']}, SEND_TASK_SECONDS {sending['task_seconds']}"
    )
    target = f"target <= {TARGET_PREPARE_S:.0f} s" if timed else untimed[1:-1]
    lines = [
        ("recipients", f"{n:,}"),
        ("worker", worker),
        ("message size", f"{baseline.message_bytes / 1024:.1f} KB (the HTML body 8 KB)"),
        ("campaign_start call", _s(result.call_s)),
        (
            "first Delivery rows committed",
            f"{_s(result.rows_written_s)}  (prepared_at - started_at: senders start)",
        ),
        (
            "every Delivery row committed",
            f"{_s(result.rows_committed_s)}  (started_at to recipients_pending seen False; "
            f"{target})",
        ),
        ("send -> every row committed", _s(result.prepared_s)),
        (
            "send -> first at the sink",
            f"{_s(result.first_sink_s)}  "
            + (f"(target <= {TARGET_FIRST_S:.0f} s)" if timed else untimed),
        ),
        ("send -> first sent_at", _s(result.first_sent_at_s)),
        ("send -> finished_at", _s(result.finished_at_s)),
        ("send -> sent (status seen)", _s(result.total_s)),
        ("messages/s send -> sent", f"{rate:,.0f}  (target >= {TARGET_RATE:,}, aim {AIM_RATE:,})"),
        ("messages/s first -> last sent_at", f"{span_rate:,.0f}"),
        ("bare smtplib, 1 connection", f"{baseline.one_rate:,.0f} messages/s"),
        ("bare smtplib, 2 processes", f"{baseline.two_rate:,.0f} messages/s"),
        ("ratio to 1 connection", f"{ratio:.2f}  (target >= {TARGET_RATIO})"),
        ("ratio to 2 processes", f"{ratio_two:.2f}"),
        ("SMTP sessions ended while sending", f"{result.reconnects}  (one kept open per process)"),
        (
            "worker RSS MB (all processes)",
            f"peak {result.peak_rss_mb:.0f}, idle before {result.idle_rss_mb:.0f}",
        ),
        (
            "largest worker process MB",
            f"peak {result.peak_process_mb:.0f}  (target <= {TARGET_RSS_MB})",
        ),
        ("RSS MB at % sent (all)", curve),
        ("RSS MB at % sent (largest)", largest),
        (
            "growth after 10% sent",
            f"{result.growth_mb:.0f} MB  (target <= {growth_allowed:.0f}: flat)",
        ),
        (
            "CPU seconds of the send",
            f"worker {cpu['worker']:.1f}, PostgreSQL {cpu['postgres']:.1f}, "
            f"smtp-sink {cpu['sink']:.1f}, this script {cpu['bench']:.1f}",
        ),
        (
            "CPU ms per message",
            f"{ours * 1e3 / n:.2f} = worker {cpu['worker'] * 1e3 / n:.2f} + PostgreSQL "
            f"{cpu['postgres'] * 1e3 / n:.2f} + smtp-sink {cpu['sink'] * 1e3 / n:.2f}",
        ),
        (
            "CPU ms per message, bare loop",
            f"{baseline.one_cpu_ms:.2f} over 1 connection, {baseline.two_cpu_ms:.2f} over 2 "
            "(client + smtp-sink)",
        ),
        ("CPU seconds of others meanwhile", f"{cpu['others']:.1f} = {share:.0%} of the machine"),
    ]
    print()
    for name, value in lines:
        print(f"{name:<34}{value}")
    return [message for ok, message in checks if not ok]


# ---------------------------------------------------------------------------------- main


def _environment(args: argparse.Namespace, sink_port: int) -> dict[str, str]:
    """The processes' settings: production mode, our database, queue and sink."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "heyloyalty.settings",
        "DATABASE_URL": f"{PG}/{args.database}",
        "REDIS_URL": args.redis_url,
        "CELERY_QUEUE": args.queue,
        "SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "PUBLIC_URL": PUBLIC_URL,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }
    for name, value in (
        ("SEND_PARALLELISM", args.parallelism),
        ("SEND_BATCH_SIZE", args.batch_size),
        ("SEND_TASK_SECONDS", args.task_seconds),
    ):
        if value is not None:
            env[name] = str(value)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--recipients", type=int, default=TARGET_SIZE)
    parser.add_argument("--baseline", type=int, default=20_000, help="messages per smtplib loop")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--parallelism", type=int, help="SEND_PARALLELISM")
    parser.add_argument("--batch-size", type=int, help="SEND_BATCH_SIZE")
    parser.add_argument("--task-seconds", type=int, help="SEND_TASK_SECONDS")
    parser.add_argument("--sink-port", type=int, default=2526)
    parser.add_argument("--database", default="bench_send")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--queue", default="bench_send")
    parser.add_argument("--timeout", type=float, help="seconds (default: 120 + 1 per 250)")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--profile", type=Path, help="record the worker with py-spy into this file (raw stacks)"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    sink_command(0)  # says how to install it before we set anything up

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-send-")))
        logs = work / "logs"
        logs.mkdir()
        port = free_port(args.sink_port)
        env = _environment(args, port)
        os.environ.update(env)  # for django.setup() in this process too
        try:
            return _run(args, env, logs, port, stack)
        except BaseException:
            print_logs(logs)
            raise
    return 1


def _run(
    args: argparse.Namespace, env: dict[str, str], logs: Path, port: int, stack: ExitStack
) -> int:
    dsn = env["DATABASE_URL"]
    step = stepper()
    step(f"before we start: {load_note()}")
    migrated_database(args.database, env, keep=args.keep_database, stack=stack)
    step(f"database {args.database} migrated")
    tenant = set_up_tenant(dsn, args.recipients)
    stack.callback(_close_connections)
    step(f"{args.recipients:,} members, a {tenant.html_bytes:,} byte campaign")
    sink_child, reader = stack.enter_context(sink(port, logs))
    wait_for(lambda: _listening(port), "smtp-sink", 10, sink_child)
    baseline = run_baseline(tenant, port, reader, sink_child.pid, args.baseline)
    step(
        f"bare smtplib: {baseline.one_rate:,.0f}/s over 1 connection, "
        f"{baseline.two_rate:,.0f}/s over 2 ({baseline.message_bytes / 1024:.1f} KB messages)"
    )
    worker = _start_worker(args, env, logs, stack)
    sending = _sending_settings()
    step(f"smtp-sink on :{port} and a celery worker on queue {args.queue} are up")
    sampler = RssSampler(worker.pid, progress=lambda: reader.since_armed)
    sampler.start()
    stack.callback(sampler.done.set)
    cpu = CpuAccount(dsn, args.database, worker=worker.pid, sink=sink_child.pid)
    cpu.start()
    stack.callback(cpu.done.set)
    checkpoint(dsn)
    time.sleep(1)  # a few idle samples first
    timeout = args.timeout or 120 + args.recipients / 250
    with profiling(args.profile, worker.pid, logs):
        result = run_send(tenant, args.recipients, reader, sampler, cpu, timeout, step)
    step(f"campaign {result.status}; after: {load_note()}")
    failures = report(args, sending, baseline, result)
    failures += check_deliveries(tenant, args.recipients, reader)
    if args.profile:
        print_profile(args.profile)
    python = os.path.relpath(sys.executable, ROOT) if ROOT in Path(sys.executable).parents else ""
    print(f"\ncommand: {shlex.join([python or sys.executable, *sys.argv])}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print("all targets met, counts right")
    return 1 if failures else 0


def _listening(port: int) -> bool:
    try:
        smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
    except OSError:
        return False
    return True


def _sending_settings() -> dict[str, int]:
    from django.conf import settings

    return {
        "parallelism": settings.SEND_PARALLELISM,
        "batch_size": settings.SEND_BATCH_SIZE,
        "task_seconds": settings.SEND_TASK_SECONDS,
    }


def _close_connections() -> None:
    from django.db import connections

    connections.close_all()  # before our database is dropped


def _start_worker(
    args: argparse.Namespace, env: dict[str, str], logs: Path, stack: ExitStack
) -> subprocess.Popen[bytes]:
    """The Procfile's worker on our own queue (emptied first), prefork; this process sends
    its tasks there too."""
    from heyloyalty.celery import app

    app.conf.task_default_queue = args.queue
    celery = [str(VENV_BIN / "celery"), "--app", "heyloyalty"]
    subprocess.run(  # noqa: S603 - our own argv, no shell
        [*celery, "purge", "--force", "--queues", args.queue],
        env=env,
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    pool = ["--pool", "prefork", "--concurrency", str(args.concurrency), "--queues", args.queue]
    command = [*celery, "worker", *pool, *quiet, "--loglevel", "INFO"]
    worker = stack.enter_context(process("worker", command, env, logs))
    wait_for(lambda: " ready." in (logs / "worker.log").read_text(), "celery worker", 60, worker)
    return worker


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: the processes this run started are stopped")
