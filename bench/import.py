"""Import benchmark (issue 3): a CSV through the real API, web server and Celery worker.

    .venv/bin/python bench/import.py [--rows 1000000]

1. Recreate our own database (``bench_import`` on 127.0.0.1:5432) and migrate it; make an
   account, a list, an API key, and pre-seed 5% of the file's emails as existing members.
2. Write the CSV (email, firstname, lastname, city, points; Danish letters; 10% of the rows
   repeat an earlier email, in another case now and then) into a temp dir.
3. Time a raw ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the same file into a plain
   table: the floor no import that validates rows can beat on this machine.
4. Start gunicorn (heyloyalty/gunicorn.py) and one solo Celery worker on a queue of our own,
   upload the file signed as a client would, and poll until the import is ``done``,
   sampling the worker's RSS (with children) every 0.2 s and counting the CPU seconds of
   our processes and of everyone else's: the machine is shared, and a time means little
   without the quiet it was measured in.
5. Print the figures against the targets, check created/updated/skipped and the members
   themselves, stop every process we started (also on Ctrl-C) and drop our database.

Exits 1 when a count is wrong or a target is missed. ``--database``, ``--queue`` and
``--port`` let two runs (say, before and after a change) share the machine.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from email.utils import formatdate
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
    migrated_database,
    print_logs,
    process,
    stepper,
    wait_for,
)

TARGET_ROWS_PER_S = 30_000
TARGET_RATIO = 0.4
TARGET_RSS_MB = 300
POLL_SECONDS = 0.25  # often enough to time to ~1%, rare enough not to load the 2 cores

FIRST = ["Søren", "Åse", "Mette", "Jens", "Bjørn", "Ærling", "Sofie", "Mads", "Ida", "Lærke"]
LAST = ["Hansen", "Jørgensen", "Møller", "Sørensen", "Kjær", "Østergaard", "Bæk", "Hansen, jr."]
CITIES = ["København K", "Aarhus C", "Næstved", "Køge", "Helsingør", "Ærøskøbing", "Rønne"]
DOMAINS = ["gmail.com", "hotmail.com", "mail.dk", "jubii.dk", "firma-aps.dk", "post.tele.dk"]
_ASCII = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"})


@dataclass
class Plan:
    """The file we wrote and what a correct import of it must do."""

    path: Path
    rows: int
    unique: list[str] = field(default_factory=list)  # lower-cased, in first-seen order
    duplicates: int = 0
    existing: list[str] = field(default_factory=list)
    last_points: dict[str, str | None] = field(default_factory=dict)  # emails seen twice


@dataclass
class Result:
    upload_s: float
    staged_s: float  # until every row was read, cleaned and staged (progress 100% of rows)
    total_s: float
    job: dict[str, Any]
    peak_rss_mb: float
    idle_rss_mb: float
    cpu_s: dict[str, float] = field(default_factory=dict)  # by worker, postgres, ..., others


# ------------------------------------------------------------------------------ the file


def _email(rng: random.Random, first: str, last: str, n: int) -> str:
    last = last.split(",")[0]  # "Hansen, jr." is a name, not an address
    user = rng.choice(
        [f"{first}.{last}{n}", f"{first[0]}{last}{n}", f"{last}.{first}+shop{n}", f"{first}{n}"]
    )
    user = user.translate(_ASCII)
    email = f"{user}@{rng.choice(DOMAINS)}"
    return email if rng.random() < 0.2 else email.lower()  # people type capitals


def write_csv(path: Path, rows: int, seed: int = 3) -> Plan:
    """Write ``rows`` data rows; 10% repeat an earlier email, 5% of emails are pre-seeded."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    plan = Plan(path=path, rows=rows)
    repeats = set(rng.sample(range(1, rows), rows // 10)) if rows > 1 else set()
    plan.duplicates = len(repeats)
    last_points: dict[str, str | None] = {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "firstname", "lastname", "city", "points"])
        for n in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            points = "" if rng.random() < 0.03 else str(rng.randrange(5000))
            if n in repeats:
                email = plan.unique[rng.randrange(len(plan.unique))]
                shown = email.upper() if rng.random() < 0.3 else email
                last_points[email] = points or None
            else:
                shown = _email(rng, first, last, n)
                email = shown.lower()
                plan.unique.append(email)
            writer.writerow([shown, first, last, rng.choice(CITIES), points])
    plan.last_points = last_points
    plan.existing = rng.sample(plan.unique, rows // 20)
    return plan


# -------------------------------------------------------------------------- the database


def raw_copy(dsn: str, path: Path) -> float:
    """Seconds for COPY of the file into a plain text table, commit included."""
    checkpoint(dsn)
    connection = psycopg2.connect(dsn)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_raw_copy (email text, firstname text, lastname text, "
            "city text, points text)"
        )
        connection.commit()
        started = time.perf_counter()
        with path.open("rb") as handle:
            cursor.copy_expert("COPY bench_raw_copy FROM STDIN WITH (FORMAT csv, HEADER)", handle)
        connection.commit()
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_raw_copy")
        connection.commit()
    connection.close()
    return elapsed


@dataclass
class Tenant:
    list_id: int
    key: str
    secret: str


def set_up_tenant(plan: Plan) -> Tenant:
    """An account, a list with a number field, an API key and the pre-seeded members."""
    import django

    django.setup()
    from accounts.models import ManagerAccess
    from accounts.services import account_create, apikey_create
    from members.fields import FieldSpec
    from members.services import MemberData, list_create, members_add

    account = account_create(name="Import Bench ApS", manager_access=ManagerAccess.ALLOWED)
    member_list = list_create(
        account=account, name="Bench", fields=[FieldSpec("points", "number", "Points")]
    )
    api_key, secret = apikey_create(account=account, name="bench")
    members_add(
        member_list=member_list,
        members=(MemberData(email=e, firstname="Eksisterende") for e in plan.existing),
        batch_size=5000,
    )
    return Tenant(list_id=member_list.pk, key=api_key.key, secret=secret)


def check_members(plan: Plan, tenant: Tenant) -> list[str]:
    """Problems with the members themselves: count, updated existing ones, last row wins."""
    from django.db import connection

    problems = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM members_member WHERE list_id = %s", [tenant.list_id])
        (total,) = cursor.fetchone() or (0,)
        if total != len(plan.unique):
            problems.append(f"{total} members on the list, expected {len(plan.unique)}")
        # Pre-seeded members have no city until the import updates them.
        cursor.execute(
            "SELECT count(*) FROM members_member WHERE list_id = %s AND email = ANY(%s) "
            "AND (NOT data ? 'city' OR data->>'firstname' = 'Eksisterende')",
            [tenant.list_id, plan.existing],
        )
        (stale,) = cursor.fetchone() or (0,)
        if stale:
            problems.append(f"{stale} existing members were not updated from the file")
        cursor.execute(
            "SELECT email, data->>'points' FROM members_member "
            "WHERE list_id = %s AND email = ANY(%s)",
            [tenant.list_id, list(plan.last_points)],
        )
        wrong = sum(1 for email, points in cursor.fetchall() if plan.last_points[email] != points)
        if wrong:
            problems.append(f"{wrong} repeated emails do not hold their last row's points")
    return problems


# ------------------------------------------------------------------------- the processes


def web_is_up(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False


# ------------------------------------------------------------------------- the client


class Client:
    """Signs each request the way Heyloyalty clients do (heyloyalty/api/signature.py)."""

    def __init__(self, port: int, tenant: Tenant) -> None:
        self.port = port
        self.tenant = tenant

    def _headers(self) -> dict[str, str]:
        from heyloyalty.api.signature import sign

        return sign(self.tenant.key, self.tenant.secret, formatdate(time.time(), usegmt=True))

    def upload(self, path: Path) -> dict[str, Any]:
        """Multipart POST, streamed from the file: the body is never held in memory."""
        boundary = f"hl-bench-{secrets.token_hex(8)}"
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in (("duplicate_field", "email"), ("handle_existing", "update"))
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: text/csv\r\n\r\n'
        )
        tail = f"\r\n--{boundary}--\r\n".encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        connection.putrequest("POST", f"/loyalty/v1/lists/{self.tenant.list_id}/import")
        for name, value in self._headers().items():
            connection.putheader(name, value)
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        size = len(head.encode()) + path.stat().st_size + len(tail)
        connection.putheader("Content-Length", str(size))
        connection.endheaders(head.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                connection.send(chunk)
        connection.send(tail)
        return self._answer(connection, expect=202)

    def progress(self, import_id: int) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        path = f"/loyalty/v1/lists/{self.tenant.list_id}/imports/{import_id}"
        connection.request("GET", path, headers=self._headers())
        return self._answer(connection, expect=200)

    @staticmethod
    def _answer(connection: http.client.HTTPConnection, expect: int) -> dict[str, Any]:
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status != expect:
            raise RuntimeError(f"HTTP {response.status}: {body[:500]!r}")
        answer: dict[str, Any] = json.loads(body)
        return answer


def run_import(
    client: Client, plan: Plan, sampler: RssSampler, cpu: CpuAccount, timeout: float
) -> Result:
    """Upload, then poll until done: the end-to-end time a customer waits."""
    idle = sampler.last
    sampler.reset()
    cpu.begin()
    started = time.perf_counter()
    import_id = int(client.upload(plan.path)["id"])
    uploaded = staged = time.perf_counter()
    while True:
        job = client.progress(import_id)
        if job["status"] in ("done", "failed"):
            break
        if job["rows_done"] < plan.rows:
            staged = time.perf_counter()  # the merge starts once every row is staged
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"the import is still {job['status']} after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    finished = time.perf_counter()
    return Result(
        upload_s=uploaded - started,
        staged_s=staged - started,
        total_s=finished - started,
        job=job,
        peak_rss_mb=sampler.peak / 2**20,
        idle_rss_mb=idle / 2**20,
        cpu_s=cpu.end(),
    )


# ---------------------------------------------------------------------------- the report


def expected_counts(plan: Plan) -> dict[str, int]:
    existing = len(plan.existing)
    return {
        "created": len(plan.unique) - existing,
        "updated": existing,
        "skipped": plan.duplicates,
        "error_count": 0,
    }


def report(plan: Plan, result: Result, copy_s: float) -> list[str]:
    """Print the figures; return the targets missed and the counts that are wrong."""
    rate = plan.rows / result.total_s
    copy_rate = plan.rows / copy_s
    ratio = rate / copy_rate
    cpu = result.cpu_s
    share = cpu["others"] / (result.total_s * (os.cpu_count() or 1))
    got = {name: result.job[name] for name in ("created", "updated", "skipped", "error_count")}
    wanted = expected_counts(plan)
    failures = []
    if result.job["status"] != "done":
        failures.append(f"the import {result.job['status']}: {result.job.get('failure')}")
    if got != wanted:
        failures.append(f"counts {got}, expected {wanted}")
    checks = [
        (rate >= TARGET_ROWS_PER_S, f"import rows/s {rate:,.0f} < {TARGET_ROWS_PER_S:,}"),
        (ratio >= TARGET_RATIO, f"ratio {ratio:.2f} < {TARGET_RATIO}"),
        (result.peak_rss_mb <= TARGET_RSS_MB, f"peak RSS {result.peak_rss_mb:.0f} MB"),
    ]
    failures += [message for ok, message in checks if not ok]
    lines = [
        ("rows", f"{plan.rows:,}"),
        ("upload seconds", f"{result.upload_s:.1f}"),
        ("rows staged after seconds", f"{result.staged_s:.1f}  (+- {POLL_SECONDS} s)"),
        ("end-to-end seconds", f"{result.total_s:.1f}"),
        ("import rows/s", f"{rate:,.0f}  (target >= {TARGET_ROWS_PER_S:,})"),
        ("raw COPY seconds", f"{copy_s:.1f}"),
        ("raw COPY rows/s", f"{copy_rate:,.0f}"),
        ("ratio import/COPY", f"{ratio:.2f}  (target >= {TARGET_RATIO})"),
        ("worker RSS MB", f"peak {result.peak_rss_mb:.0f}, idle {result.idle_rss_mb:.0f}"),
        ("created/updated/skipped/errors", " / ".join(f"{v:,}" for v in got.values())),
        ("expected", " / ".join(f"{v:,}" for v in wanted.values())),
        (
            "CPU seconds of the import",
            f"worker {cpu['worker']:.1f}, PostgreSQL {cpu['postgres']:.1f}, web {cpu['web']:.1f}",
        ),
        ("CPU seconds of others meanwhile", f"{cpu['others']:.1f} = {share:.0%} of the machine"),
    ]
    print()
    for name, value in lines:
        print(f"{name:<32}{value}")
    return failures


# ------------------------------------------------------------------------------- main


def _environment(database: str, redis: str, queue: str, work: Path, port: int) -> dict[str, str]:
    """The processes' settings: production mode, our database, queue and import dir."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "heyloyalty.settings",
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": redis,
        "BENCH_CELERY_QUEUE": queue,
        "IMPORT_DIR": str(work / "imports"),
        "BIND": f"127.0.0.1:{port}",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database", default="bench_import")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--queue", default="bench_import")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupted)

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-import-")))
        logs = work / "logs"
        logs.mkdir()
        port = free_port(args.port)
        env = _environment(args.database, args.redis_url, args.queue, work, port)
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
    if (busy := psutil.cpu_percent(interval=1.0)) > 10:
        step(f"warning: the machine is {busy:.0f}% busy before we start; that slows this run")
    migrated_database(args.database, env, keep=args.keep_database, stack=stack)
    step(f"database {args.database} migrated")
    plan = write_csv(work / "members.csv", args.rows)
    step(f"wrote {args.rows:,} rows ({plan.path.stat().st_size / 2**20:.0f} MB)")
    tenant = set_up_tenant(plan)
    step(f"pre-seeded {len(plan.existing):,} existing members")
    copy_s = raw_copy(dsn, plan.path)
    step(f"raw COPY: {copy_s:.1f} s")
    web, worker = _start(args.queue, env, logs, port, stack)
    step(f"gunicorn on :{port} and a celery worker on queue {args.queue} are up")
    sampler = RssSampler(worker.pid)
    sampler.start()
    stack.callback(sampler.done.set)
    cpu = CpuAccount(dsn, args.database, worker=worker.pid, web=web.pid)
    cpu.start()
    stack.callback(cpu.done.set)
    time.sleep(1)  # a few idle samples first
    checkpoint(dsn)
    result = run_import(Client(port, tenant), plan, sampler, cpu, args.timeout)
    step("import finished")
    failures = report(plan, result, copy_s) + check_members(plan, tenant)
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print("all targets met, counts right")
    return 1 if failures else 0


def _start(
    queue: str, env: dict[str, str], logs: Path, port: int, stack: ExitStack
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """gunicorn as the Procfile runs it, and one solo worker on our own queue (emptied first)."""
    celery = [str(VENV_BIN / "celery"), "--app", "heyloyalty"]
    subprocess.run(  # noqa: S603 - our own argv, no shell
        [*celery, "purge", "--force", "--queues", queue],
        env=env,
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    gunicorn = [str(VENV_BIN / "gunicorn"), "bench.wsgi:application"]
    web = stack.enter_context(
        process("web", [*gunicorn, "--config", "python:heyloyalty.gunicorn"], env, logs)
    )
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    solo = ["--pool", "solo", "--concurrency", "1", "--queues", queue, "--loglevel", "INFO"]
    worker = stack.enter_context(process("worker", [*celery, "worker", *solo, *quiet], env, logs))
    wait_for(lambda: web_is_up(port), "gunicorn", 60, web)
    wait_for(lambda: " ready." in (logs / "worker.log").read_text(), "celery worker", 60, worker)
    return web, worker


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: the processes this run started are stopped")
