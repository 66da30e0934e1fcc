"""Audit benchmark (issue 6): what the audit middleware adds to a request by staff, and
how long ``audit_verify`` takes for 1,000,000 events.

    .venv/bin/python bench/audit.py [--requests 2000] [--events 1000000]

What it does, start to finish:

1. (Re)creates its own database ``bench_audit_heyloyalty`` on the machine's PostgreSQL
   (127.0.0.1:5432, user postgres) and migrates it. Production settings: DEBUG off (so
   Django keeps no query log), a fresh SECRET_KEY and field key, ``ENV_FILE=/dev/null``.
2. Makes the personas (an account with its owner, its manager with standing access, a
   main admin) through the services.
3. **Middleware overhead.** Two Django request handlers in this process, built from the
   same settings except that one leaves out ``audit.middleware.StaffAuditMiddleware``.
   The same signed-in client asks both, in alternating blocks of 25, for the same admin
   page of a customer's user (``/admin/accounts/user/<id>/change/``), first as the main
   admin and then as the account manager: each request with the middleware checks
   consent and writes (and commits) one hash-chained event. After a warm-up,
   ``--requests`` requests through each are timed; the figure is the median with the
   middleware less the median without. Beside it, the CPU per request of this process
   and of its PostgreSQL backend, with and without: on a shared machine the CPU is the
   steadier figure. A customer's dashboard page is measured the same way, to show the
   middleware costs customers nothing. Each event is one durable commit, so the run also
   times a bare commit and the machine's disk writes; a third pass on the main admin's
   page with ``synchronous_commit`` off (for the measurement only) shows the
   middleware's cost without the wait for the disk.
4. **audit_verify.** Appends ``--events`` events to the chain (hashed here, written with
   COPY), checkpoints, and runs ``manage.py audit_verify --json`` as operators do,
   timing it from start to exit; ``COPY audit_auditevent TO STDOUT`` of the same table
   is timed as the floor (reading the rows, no hashing).
5. Prints every figure with the machine's load, and drops the database.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PG,
    VENV_BIN,
    checkpoint,
    drop_database,
    load_note,
    recreate_database,
    stepper,
)

DB_NAME = "bench_audit_heyloyalty"
DSN = f"{PG}/{DB_NAME}"
MIDDLEWARE = "audit.middleware.StaffAuditMiddleware"
TARGET_MS = 2.0
TARGET_VERIFY_S = 30.0


def bench_env() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "ENV_FILE": "/dev/null",
        "DATABASE_URL": DSN,
        "REDIS_URL": "redis://127.0.0.1:6379/11",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "FIELD_ENCRYPTION_KEYS": f"k1:{Fernet.generate_key().decode()}",
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_MANIFEST": "0",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "DJANGO_SETTINGS_MODULE": "heyloyalty.settings",
        "LOG_LEVEL": "ERROR",
        "DB_CONN_MAX_AGE": "3600",  # one connection for the run, as a busy web process keeps
    }


# ------------------------------------------------------------------ middleware overhead


def handler(*, with_audit: bool) -> Any:
    """A request handler whose middleware chain is built now, with or without ours."""
    from django.conf import settings
    from django.test.client import ClientHandler
    from django.test.utils import override_settings

    chain = [m for m in settings.MIDDLEWARE if with_audit or m != MIDDLEWARE]
    built = ClientHandler(enforce_csrf_checks=False)
    with override_settings(MIDDLEWARE=chain):
        built.load_middleware()
    return built


BLOCK = 25  # requests in a row to one handler; CPU is read per block (10 ms ticks)


@dataclass
class Timing:
    wall_ms: list[float] = field(default_factory=list)  # per request
    own_cpu_s: float = 0.0  # this process (Django, the middleware)
    db_cpu_s: float = 0.0  # the PostgreSQL backend serving it

    def cpu_ms(self) -> float:
        return (self.own_cpu_s + self.db_cpu_s) * 1000 / len(self.wall_ms)


def _backend() -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return psutil.Process(pid)


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def timed_blocks(
    client: Any, url: str, handlers: tuple[Any, Any], requests: int, warmup: int
) -> tuple[Timing, Timing]:
    """The same page through both handlers, in alternating blocks of BLOCK requests
    (which handler goes first alternates too): wall time per request, and the CPU of
    this process and of its database backend per block."""
    timings = (Timing(), Timing())
    for block in range((warmup + requests) // BLOCK):
        order = (0, 1) if block % 2 == 0 else (1, 0)
        for which in order:
            client.handler = handlers[which]
            backend = _backend()
            own, db = time.process_time(), _cpu(backend)
            walls = []
            for _ in range(BLOCK):
                started = time.perf_counter()
                response = client.get(url)
                walls.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code}")
            if block * BLOCK >= warmup:
                timing = timings[which]
                timing.wall_ms.extend(walls)
                timing.own_cpu_s += time.process_time() - own
                timing.db_cpu_s += _cpu(backend) - db
    return timings


def overhead(label: str, with_audit: Timing, without: Timing) -> dict[str, Any]:
    result = {
        "page": label,
        "median_with_ms": statistics.median(with_audit.wall_ms),
        "median_without_ms": statistics.median(without.wall_ms),
        "overhead_ms": statistics.median(with_audit.wall_ms) - statistics.median(without.wall_ms),
        "cpu_with_ms": with_audit.cpu_ms(),
        "cpu_without_ms": without.cpu_ms(),
        "cpu_overhead_ms": with_audit.cpu_ms() - without.cpu_ms(),
        "db_cpu_overhead_ms": (with_audit.db_cpu_s - without.db_cpu_s)
        * 1000
        / len(with_audit.wall_ms),
        "requests": len(with_audit.wall_ms) + len(without.wall_ms),
    }
    print(
        f"  {label}: wall median {result['median_with_ms']:.2f} ms with, "
        f"{result['median_without_ms']:.2f} ms without -> {result['overhead_ms']:+.2f} ms; "
        f"CPU {result['cpu_with_ms']:.2f} / {result['cpu_without_ms']:.2f} ms per request -> "
        f"{result['cpu_overhead_ms']:+.2f} ms (of which PostgreSQL "
        f"{result['db_cpu_overhead_ms']:+.2f} ms)",
        flush=True,
    )
    return result


def _commit_ms(samples: int = 200) -> float:
    """The median time of one small durable commit right now (an INSERT into a scratch
    table): what the disk makes every commit wait, whoever's it is."""
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit (id serial PRIMARY KEY)")
        for _ in range(samples):
            started = time.perf_counter()
            cursor.execute("INSERT INTO bench_commit DEFAULT VALUES")
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _synchronous_commit(value: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('synchronous_commit', %s, false)", [value])


def measure_middleware(pairs: int, warmup: int, step: Callable[[str], None]) -> list[dict]:
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User
    from audit.models import AuditEvent
    from tests.conftest import make_personas

    personas = make_personas()
    handlers = (handler(with_audit=True), handler(with_audit=False))
    page = reverse("admin:accounts_user_change", args=[personas.alice.pk])
    results = []
    staff: list[tuple[str, User, str]] = [
        ("main admin", personas.root, "on"),
        ("manager", personas.mallory, "on"),
        # Measurement only: the same, with commits not waiting for the WAL on disk, to
        # tell the middleware's own cost from the disk's (the product keeps "on").
        ("main admin, commits not waiting for the disk", personas.root, "off"),
    ]
    for label, user, synchronous in staff:
        client = Client()
        client.force_login(user)
        before = AuditEvent.objects.count()
        step(f"{label}: {pairs} + {pairs} GET {page} (after {warmup} + {warmup} warm-up)")
        commit_before = _commit_ms()
        disk = psutil.disk_io_counters()
        started = time.perf_counter()
        _synchronous_commit(synchronous)
        timed = timed_blocks(client, page, handlers, pairs, warmup)
        _synchronous_commit("on")
        elapsed = time.perf_counter() - started
        written_mb = (psutil.disk_io_counters().write_bytes - disk.write_bytes) / 1e6
        commit = (commit_before + _commit_ms()) / 2
        events = AuditEvent.objects.count() - before
        expected = (warmup + pairs) // BLOCK * BLOCK  # every request through handlers[0]
        if events != expected:
            raise RuntimeError(f"{events} events for {expected} requests")
        result = overhead(f"admin user page as {label}", *timed)
        result["commit_ms"] = commit
        result["disk_write_mb_s"] = written_mb / elapsed
        print(
            f"    one durable commit took {commit:.2f} ms (median, before and after); the "
            f"machine wrote {written_mb / elapsed:.0f} MB/s to disk meanwhile",
            flush=True,
        )
        results.append(result)
    customer = Client()
    customer.force_login(personas.alice)
    step(f"customer: {pairs // 2} + {pairs // 2} GET /lists/")
    results.append(
        overhead(
            "dashboard lists as customer",
            *timed_blocks(customer, reverse("members:lists"), handlers, pairs // 2, warmup),
        )
    )
    return results


# ------------------------------------------------------------------------ audit_verify


def append_events(count: int, step: Callable[[str], None]) -> None:
    """``count`` events continuing the chain, hashed as ``audit_append`` does, by COPY."""
    from django.db import connection

    from audit import chain
    from audit.models import GENESIS_HASH, AuditEvent

    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev = last if last is not None else (0, GENESIS_HASH)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"] * 3
    agents.append("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari")
    actions = ["admin.view", "admin.list", "impersonation.page", "admin.change"]
    batch = io.StringIO()

    def flush() -> None:
        batch.seek(0)
        with connection.cursor() as cursor:
            cursor.copy_expert(
                "COPY audit_auditevent (seq, at, actor_id, actor_email, actor_role, account_id,"
                " action, target_type, target_id, target_repr, path, method, status, ip,"
                " user_agent, grant_id, reason, extra, prev_hash, hash) FROM STDIN",
                batch,
            )
        batch.seek(0)
        batch.truncate()

    for n in range(1, count + 1):
        seq += 1
        at = start + timedelta(seconds=n * 3, microseconds=n % 1_000_000)
        account = n % 500 + 1
        texts = [  # as PostgreSQL prints them: what is hashed (audit/chain.py)
            str(seq),
            chain.at_text(at),
            str(n % 40 + 1),
            f"manager{n % 40}@heyloyalty.example",
            "manager" if n % 7 else "admin",
            str(account),
            actions[n % 4],
            "accounts.user",
            str(n % 9000 + 1),
            f"customer{n % 9000}@shop{account}.example",
            f"/admin/accounts/user/{n % 9000 + 1}/change/",
            "GET",
            "200",
            f"10.{n % 250}.{n % 200}.{n % 100 + 1}",
            agents[n % 4],
            None,
            "",
            '{"access": "standing"}' if n % 3 else "{}",  # jsonb's own text form
            prev,
        ]
        prev = chain.digest(texts)
        batch.write("\t".join("\\N" if t is None else t for t in [*texts, prev]) + "\n")
        if n % 50_000 == 0:
            flush()
            step(f"  {n:,} events written")
    if batch.tell():
        flush()


def measure_verify(events: int, env: dict[str, str], step: Callable[[str], None]) -> dict:
    from django.db import connection

    step(f"appending {events:,} events to the chain")
    append_events(events, step)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), pg_total_relation_size('audit_auditevent') FROM audit_auditevent"
        )
        rows, size = cursor.fetchone()
    checkpoint(DSN)
    step(f"{rows:,} events, {size / 1e6:.0f} MB; timing COPY TO of the table (the floor)")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.copy_expert("COPY audit_auditevent TO STDOUT", _Discard())
    floor = time.perf_counter() - started
    step("timing manage.py audit_verify --json")
    started = time.perf_counter()
    cpu_before = os.times()
    done = subprocess.run(  # noqa: S603 - our own argv
        [str(VENV_BIN / "python"), "manage.py", "audit_verify", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    cpu_after = os.times()
    if done.returncode != 0:
        raise RuntimeError(f"audit_verify failed: {done.stdout}\n{done.stderr}")
    report = json.loads(done.stdout)
    if not report["ok"] or report["rows"] != rows:
        raise RuntimeError(f"audit_verify: {report}")
    cpu = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    print(
        f"  audit_verify: {rows:,} rows in {wall:.1f} s wall ({report['seconds']:.1f} s inside "
        f"the command, {cpu:.1f} s CPU of the command); COPY TO floor {floor:.1f} s",
        flush=True,
    )
    return {
        "rows": rows,
        "wall_s": wall,
        "inside_s": report["seconds"],
        "cpu_s": cpu,
        "copy_floor_s": floor,
        "table_mb": size / 1e6,
    }


class _Discard(io.RawIOBase):
    def write(self, data: Any) -> int:
        return len(data)


# ------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per handler and page")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    step = stepper()
    env = bench_env()
    os.environ.update(env)
    print(f"before: {load_note()}", flush=True)
    step(f"creating and migrating {DB_NAME}")
    recreate_database(DB_NAME)
    try:
        subprocess.run(  # noqa: S603 - our own argv
            [str(VENV_BIN / "python"), "manage.py", "migrate", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        import django

        django.setup()
        results = measure_middleware(args.requests, args.warmup, step)
        print(f"after the middleware runs: {load_note()}", flush=True)
        verify = measure_verify(args.events, env, step)
        print(f"after audit_verify: {load_note()}", flush=True)
        from django.db import connections

        connections.close_all()
    finally:
        if not args.keep:
            drop_database(DB_NAME)
    worst = max(r["overhead_ms"] for r in results[:2])
    worst_cpu = max(r["cpu_overhead_ms"] for r in results[:2])
    print("\nSummary")
    for r in results:
        print(f"  {r['page']}: {r['overhead_ms']:+.2f} ms wall, {r['cpu_overhead_ms']:+.2f} ms CPU")
    print(
        f"  middleware overhead for staff: {worst:.2f} ms wall, {worst_cpu:.2f} ms CPU "
        f"({'met' if worst <= TARGET_MS else 'NOT met'}: at most {TARGET_MS} ms)"
    )
    print(
        f"  without the wait for the disk: {results[2]['overhead_ms']:.2f} ms wall "
        f"(a durable commit took {results[0]['commit_ms']:.2f} / {results[1]['commit_ms']:.2f} ms)"
    )
    met = "met" if verify["wall_s"] < TARGET_VERIFY_S else "NOT met"
    print(
        f"  audit_verify of {verify['rows']:,} events: {verify['wall_s']:.1f} s "
        f"({met}: under {TARGET_VERIFY_S:.0f} s)"
    )


if __name__ == "__main__":
    main()
