"""Birthday benchmark (issue 5): members whose birthday is today all get the birthday mail
of an autoresponder, through beat, the trigger evaluation and the sending pipeline, to
Postfix's smtp-sink.

    .venv/bin/python bench/birthday.py [--birthdays 100000] [--others 100000]

1. Recreate our own database (``bench_birthday`` on 127.0.0.1:5432) and migrate it; make
   an account with a verified sender domain and a list (Europe/Copenhagen) with
   ``--birthdays`` members born on today's date there (years 1940 to 2008) and ``--others``
   born on another day or with no birthdate at all (one in ten) — COPY, 50,000 rows a
   statement, then VACUUM ANALYZE as autovacuum would.
2. A birthday autoresponder: the date trigger on ``birthdate``, yearly, one mail (bench/
   send.py's 8 KB newsletter: 3 merge tags, 5 tracked links, the open pixel, the text part
   made from the HTML), left switched off.
3. Start smtp-sink on a port of our own and read its running counter; start a Celery
   worker (prefork, one process per core) and beat, as the Procfile does, on a queue of
   our own, with every job of heyloyalty/schedule.py (the evaluation every
   ``AUTORESPONDER_BEAT_SECONDS``, 60 as in production).
4. The trigger time: the autoresponder is switched on. It stands for midnight in the
   list's time zone, from when today's birthdays are due; beat's next evaluation (within
   its interval, as after midnight) writes the Delivery rows and wakes the senders. Poll
   until the sink has them all, sampling the worker's RSS and counting the CPU seconds of
   our processes and of everyone else's (the machine is shared).
5. Print the figures against the target (trigger time to the last message sent, under 10
   minutes); check that each birthday member has exactly one 'sent' row and nobody else
   has any, that the sink counted exactly one message each, and that evaluating again
   (twice, in this process) writes nothing; stop every process we started (also on
   Ctrl-C) and drop our database.

Exits 1 when a count is wrong or the target is missed. ``--database``, ``--queue`` and
``--sink-port`` let two runs share the machine. Needs Postfix's smtp-sink:
``apt-get install -y postfix``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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
    wait_for,
)
from bench.send import (  # noqa: E402
    _ASCII,
    COPY_ROWS,
    DOMAINS,
    FIRST,
    LAST,
    MEMBER_COLUMNS,
    PUBLIC_URL,
    SENDER_DOMAIN,
    Sink,
    campaign_html,
    sink,
    sink_command,
)

TARGET_S = 600.0  # trigger time to the last message sent
ZONE = "Europe/Copenhagen"
POLL_SECONDS = 0.5
BEAT_SECONDS = 60


@dataclass
class Tenant:
    account_id: int
    list_id: int
    autoresponder_id: int
    campaign_id: int  # the step's
    birthdays: int
    others: int


@dataclass
class Result:
    trigger_at: float  # the autoresponder switched on (epoch seconds)
    evaluated_s: float  # trigger to the start of the evaluation that fired
    rows_visible_s: float  # trigger to the rows seen committed by another connection
    first_sink_s: float  # trigger to the first message at the sink
    last_sink_s: float  # trigger to the last message at the sink
    first_sent_s: float  # trigger to min(sent_at)
    last_sent_s: float  # trigger to max(sent_at): the target's figure
    later_evaluation_s: float  # one more evaluation, all mail sent already
    peak_rss_mb: float
    peak_process_mb: float
    reconnects: int
    cpu_s: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the members


def _other_day(rng: random.Random, today: date) -> str | None:
    """A birthdate that is not today's (nor 29 February when today stands for it)."""
    if rng.random() < 0.1:
        return None
    while True:
        day = date(2000, 1, 1) + timedelta(days=rng.randrange(366))  # 2000: a leap year
        if (day.month, day.day) == (today.month, today.day):
            continue
        if (day.month, day.day) == (2, 29) and (today.month, today.day) == (2, 28):
            continue
        year = rng.randrange(1940, 2009)
        if (day.month, day.day) == (2, 29):
            year -= year % 4  # a leap year
        return day.replace(year=year).isoformat()


def _born_today(rng: random.Random, today: date) -> str:
    year = rng.randrange(1940, 2009)
    if (today.month, today.day) == (2, 29):
        year -= year % 4
    return today.replace(year=year).isoformat()


def member_lines(list_id: int, birthdays: int, others: int, today: date) -> Any:
    """COPY text lines for members_member, birthdays and others shuffled together."""
    rng = random.Random(5)  # noqa: S311 - test data, not secrets
    now = datetime.now().astimezone().isoformat()
    kinds = [True] * birthdays + [False] * others
    rng.shuffle(kinds)
    for n, birthday in enumerate(kinds):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{n}@{rng.choice(DOMAINS)}".translate(_ASCII).lower()
        data: dict[str, str] = {"firstname": first, "lastname": last}
        born = _born_today(rng, today) if birthday else _other_day(rng, today)
        if born is not None:
            data["birthdate"] = born
        payload = json.dumps(data, ensure_ascii=False).replace("\\", "\\\\")
        yield (
            f"{uuid.uuid4()}\t{list_id}\t{email}\t\t{email}\t\\N\t{payload}\tactive\tactive\t"
            f"active\tbench\t\\N\t\\N\t\tf\t\\N\t\\N\t0\t0\t{now}\t{now}\n"
        )


def copy_members(dsn: str, list_id: int, birthdays: int, others: int, today: date) -> None:
    connection = psycopg2.connect(dsn)
    lines = member_lines(list_id, birthdays, others, today)
    with connection.cursor() as cursor:
        while chunk := [line for _, line in zip(range(COPY_ROWS), lines, strict=False)]:
            buffer = io.StringIO("".join(chunk))
            cursor.copy_expert(f"COPY members_member ({MEMBER_COLUMNS}) FROM STDIN", buffer)
        connection.commit()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE members_member")
    connection.close()


def set_up_tenant(dsn: str, birthdays: int, others: int, today: date) -> Tenant:
    """An account with a verified sender domain, the list and its members, and the
    birthday autoresponder (switched off)."""
    import django

    django.setup()
    from accounts.models import ManagerAccess
    from accounts.services import account_create
    from campaigns.autoresponders import autoresponder_create, autoresponder_step_add
    from campaigns.services import sender_domain_add
    from members.services import list_create

    account = account_create(name="Bageren på Hjørnet ApS", manager_access=ManagerAccess.ALLOWED)
    sender_domain_add(account=account, domain=SENDER_DOMAIN, verified=True)
    member_list = list_create(account=account, name="Kundeklubben")
    member_list.timezone = ZONE
    member_list.save(update_fields=["timezone"])
    copy_members(dsn, member_list.pk, birthdays, others, today)
    ar = autoresponder_create(
        account=account,
        member_list=member_list,
        name="Tillykke med fødselsdagen",
        trigger="date",
        field_name="birthdate",
        yearly=True,
    )
    step = autoresponder_step_add(
        autoresponder=ar,
        subject='Tillykke med dagen, {{ firstname | default: "kære kunde" }}!',
        preheader="En kage på huset i hele din fødselsdagsuge",
        from_name="Bageren på Hjørnet",
        from_email=f"nyheder@{SENDER_DOMAIN}",
        html=campaign_html(),
        tracking=True,
    )
    return Tenant(account.pk, member_list.pk, ar.pk, step.campaign_id, birthdays, others)


# ------------------------------------------------------------------------------ the run


def run_birthdays(
    tenant: Tenant,
    reader: Sink,
    sampler: RssSampler,
    cpu: CpuAccount,
    timeout: float,
    step: Any,
) -> Result:
    """Switch the autoresponder on (the trigger time), then wait for every message."""
    from django.db import connection
    from django.utils.timezone import now

    from campaigns.autoresponder_triggers import autoresponder_evaluate
    from campaigns.autoresponders import autoresponder_activate
    from campaigns.models_autoresponders import Autoresponder

    expected = tenant.birthdays
    sampler.reset()
    reader.arm()
    cpu.begin()
    trigger_at = time.time()
    autoresponder_activate(autoresponder=Autoresponder.objects.get(pk=tenant.autoresponder_id))
    step("the birthday autoresponder is on: waiting for beat's evaluation")
    visible = float("nan")
    tenth = 1
    while reader.since_armed < expected:
        if visible != visible:  # nan: not seen yet
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM campaigns_delivery WHERE campaign_id = %s)",
                    [tenant.campaign_id],
                )
                if cursor.fetchone()[0]:
                    visible = time.time()
                    step(f"the Delivery rows are committed, {visible - trigger_at:.1f} s in")
        elif reader.since_armed >= tenth * expected / 10:
            step(f"{reader.since_armed:,} messages at the sink")
            tenth = reader.since_armed * 10 // expected + 1
        if time.time() - trigger_at > timeout:
            raise RuntimeError(f"{reader.since_armed:,} of {expected:,} after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    last_sink = reader.last_at
    cpu_s = cpu.end()
    sampler.done.set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(sent_at), max(sent_at) FROM campaigns_delivery WHERE campaign_id = %s",
            [tenant.campaign_id],
        )
        first_sent, last_sent = cursor.fetchone()
    with connection.cursor() as cursor:
        # A date trigger's rows are due at the time of the evaluation that wrote them (no
        # delay, no send window here): when that evaluation began.
        cursor.execute(
            "SELECT min(next_attempt_at) FROM campaigns_delivery WHERE campaign_id = %s",
            [tenant.campaign_id],
        )
        (evaluated,) = cursor.fetchone()
    times: list[float] = []
    again = 0
    while len(times) < 2:
        started = time.perf_counter()
        written = autoresponder_evaluate(autoresponder_id=tenant.autoresponder_id, now=now())
        if written is None:  # beat's evaluation has it locked right now: wait for it
            time.sleep(0.2)
            continue
        times.append(time.perf_counter() - started)
        again += written
    later = sum(times) / len(times)
    if again:
        raise RuntimeError(f"evaluating again wrote {again:,} more rows")
    return Result(
        trigger_at=trigger_at,
        evaluated_s=_since(evaluated, trigger_at),
        rows_visible_s=visible - trigger_at,
        first_sink_s=(reader.first_at or float("nan")) - trigger_at,
        last_sink_s=last_sink - trigger_at,
        first_sent_s=_since(first_sent, trigger_at),
        last_sent_s=_since(last_sent, trigger_at),
        later_evaluation_s=later,
        peak_rss_mb=sampler.peak / 2**20,
        peak_process_mb=sampler.peak_process / 2**20,
        reconnects=reader.sessions - reader.sessions_armed,
        cpu_s=cpu_s,
    )


def _since(moment: datetime | None, start: float) -> float:
    return float("nan") if moment is None else moment.timestamp() - start


# ---------------------------------------------------------------------------- the checks


def check_deliveries(tenant: Tenant, reader: Sink) -> list[str]:
    """Each birthday member exactly one 'sent' row, nobody else any; the sink one each."""
    from django.db import connection

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
            """SELECT count(*) FILTER (WHERE d.id IS NULL AND born),
                      count(*) FILTER (WHERE d.id IS NOT NULL AND NOT born)
               FROM (SELECT m.id, substr(m.data ->> 'birthdate', 6, 5) = %s AS born
                     FROM members_member m WHERE m.list_id = %s) m
               LEFT JOIN campaigns_delivery d ON d.campaign_id = %s AND d.member_id = m.id""",
            [_today().strftime("%m-%d"), tenant.list_id, tenant.campaign_id],
        )
        missing, wrong = cursor.fetchone() or (0, 0)
    expected = tenant.birthdays
    if (sent, members) != (expected, expected):
        problems.append(f"{sent:,} 'sent' rows for {members:,} members, expected {expected:,}")
    if other:
        problems.append(f"{other:,} Delivery rows are not 'sent'")
    if missing:
        problems.append(f"{missing:,} birthday members have no row")
    if wrong:
        problems.append(f"{wrong:,} members without a birthday today have a row")
    at_sink = reader.wait_for(reader.armed_at + expected, timeout=10) - reader.armed_at
    if at_sink != expected:
        problems.append(f"the sink counted {at_sink:,} messages, expected {expected:,}")
    return problems


def _today() -> date:
    return datetime.now(ZoneInfo(ZONE)).date()


# ---------------------------------------------------------------------------- the report


def report(args: argparse.Namespace, tenant: Tenant, result: Result) -> list[str]:
    n = tenant.birthdays
    cpu = result.cpu_s
    span = result.last_sent_s - result.first_sent_s
    rate = (n - 1) / span if span > 0 else float("nan")
    share = cpu["others"] / (max(result.last_sink_s, 1) * (os.cpu_count() or 1))
    lines = [
        ("birthdays today", f"{n:,} (and {tenant.others:,} other members on the list)"),
        (
            "worker",
            f"prefork, {args.concurrency} processes; beat every {BEAT_SECONDS} s",
        ),
        ("trigger -> evaluation start", f"{result.evaluated_s:.1f} s  (beat's interval)"),
        ("trigger -> rows committed", f"{result.rows_visible_s:.1f} s"),
        ("evaluation -> rows committed", f"{result.rows_visible_s - result.evaluated_s:.1f} s"),
        ("trigger -> first at the sink", f"{result.first_sink_s:.1f} s"),
        ("trigger -> first sent_at", f"{result.first_sent_s:.1f} s"),
        (
            "trigger -> last sent_at",
            f"{result.last_sent_s:.1f} s  (target < {TARGET_S:.0f} s)",
        ),
        ("trigger -> last at the sink", f"{result.last_sink_s:.1f} s"),
        ("messages/s first -> last sent_at", f"{rate:,.0f}"),
        ("a later evaluation (all sent)", f"{result.later_evaluation_s:.2f} s"),
        ("SMTP sessions ended", f"{result.reconnects}"),
        (
            "worker RSS MB",
            f"peak {result.peak_rss_mb:.0f} (all), {result.peak_process_mb:.0f} (largest)",
        ),
        (
            "CPU seconds",
            f"worker {cpu['worker']:.1f}, beat {cpu['beat']:.1f}, "
            f"PostgreSQL {cpu['postgres']:.1f}, smtp-sink {cpu['sink']:.1f}, "
            f"this script {cpu['bench']:.1f}",
        ),
        ("CPU seconds of others meanwhile", f"{cpu['others']:.1f} = {share:.0%} of the machine"),
    ]
    print()
    for name, value in lines:
        print(f"{name:<34}{value}")
    checks = [
        (
            result.last_sent_s < TARGET_S,
            f"the last birthday mail went {result.last_sent_s:.0f} s after the trigger",
        )
    ]
    return [message for ok, message in checks if not ok]


# ---------------------------------------------------------------------------------- main


def _environment(args: argparse.Namespace, sink_port: int) -> dict[str, str]:
    return {
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
        "AUTORESPONDER_BEAT_SECONDS": str(BEAT_SECONDS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--birthdays", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sink-port", type=int, default=2527)
    parser.add_argument("--database", default="bench_birthday")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--queue", default="bench_birthday")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    sink_command(0)  # says how to install it before we set anything up

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-birthday-")))
        logs = work / "logs"
        logs.mkdir()
        port = free_port(args.sink_port)
        env = _environment(args, port)
        os.environ.update(env)  # for django.setup() in this process too
        try:
            return _run(args, env, work, logs, port, stack)
        except BaseException:
            print_logs(logs)
            raise
    return 1


def _run(
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
    logs: Path,
    port: int,
    stack: ExitStack,
) -> int:
    dsn = env["DATABASE_URL"]
    step = stepper()
    step(f"before we start: {load_note()}")
    today = _today()
    migrated_database(args.database, env, keep=args.keep_database, stack=stack)
    step(f"database {args.database} migrated")
    tenant = set_up_tenant(dsn, args.birthdays, args.others, today)
    stack.callback(_close_connections)
    step(f"{args.birthdays:,} members born on {today:%d %B}, {args.others:,} others")
    sink_child, reader = stack.enter_context(sink(port, logs))
    wait_for(lambda: _listening(port), "smtp-sink", 10, sink_child)
    worker, beat = _start(args, env, work, logs, stack)
    step(f"smtp-sink on :{port}, a celery worker and beat on queue {args.queue} are up")
    sampler = RssSampler(worker.pid)
    sampler.start()
    stack.callback(sampler.done.set)
    cpu = CpuAccount(dsn, args.database, worker=worker.pid, beat=beat.pid, sink=sink_child.pid)
    cpu.start()
    stack.callback(cpu.done.set)
    checkpoint(dsn)
    time.sleep(1)
    result = run_birthdays(tenant, reader, sampler, cpu, args.timeout, step)
    step(f"all sent; after: {load_note()}")
    failures = report(args, tenant, result) + check_deliveries(tenant, reader)
    if _today() != today:
        print("note: the date changed during the run (midnight in Copenhagen)")
    python = os.path.relpath(sys.executable, ROOT) if ROOT in Path(sys.executable).parents else ""
    print(f"\ncommand: {shlex.join([python or sys.executable, *sys.argv])}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print("target met, counts right")
    return 1 if failures else 0


def _listening(port: int) -> bool:
    import smtplib

    try:
        smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
    except OSError:
        return False
    return True


def _close_connections() -> None:
    from django.db import connections

    connections.close_all()  # before our database is dropped


def _start(
    args: argparse.Namespace, env: dict[str, str], work: Path, logs: Path, stack: ExitStack
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """The Procfile's worker (prefork) and beat, on our own queue (emptied first); this
    process sends its tasks there too."""
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
    schedule = ["--schedule", str(work / "celerybeat-schedule")]
    beat = stack.enter_context(
        process("beat", [*celery, "beat", *schedule, "--loglevel", "INFO"], env, logs)
    )
    wait_for(lambda: "beat: Starting" in (logs / "beat.log").read_text(), "beat", 30, beat)
    return worker, beat


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: the processes this run started are stopped")
