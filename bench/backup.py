"""Backup benchmark (issue 7): the hourly backup of a big database, and a full restore.

    .venv/bin/python bench/backup.py [--members 1000000] [--events 5000000]

1. Recreate our own database (``bench_backup`` on 127.0.0.1:5432) and migrate it; fill it
   in SQL: one account and list, ``--members`` members (Danish names, JSON fields), one
   sent campaign with a delivery per member, ``--events`` opens and clicks spread over the
   deliveries (as the tracking flusher writes them: in the order they happened, each with a
   UUIDv7 event id, campaigns.tracking.event_id), the first-open rows and the counters.
   VACUUM ANALYZE and a CHECKPOINT, so the timed phases do not pay for the set-up.
2. The floor: a plain ``COPY table TO STDOUT`` of every table of the hourly backup, read by
   this process and thrown away (before the backup and again after it; the faster counts).
3. ``manage.py backup_create --kind hourly`` (and the small three-hourly one), in a process
   of its own with a fresh backup key: wall time, and the run's own duration.
4. ``manage.py backup_restore`` of both files into a new, migrated, empty database: wall
   time and the run's duration; then every table's row count is compared with the source.
5. The baseline for the restore: ``pg_dump -Fc -Z 1`` of the whole source database and
   ``pg_restore -j 2`` of it into an empty one (PostgreSQL's own tools, two jobs, as many
   as the machine has cores), timed; its rows are counted too.
6. Print the figures against the targets (hourly backup < 60 s; at least 0.3 times the
   plain COPY's throughput; full restore at most twice the backup time) with the machine's
   load, drop both databases (unless ``--keep-database``). Exits 1 when a target is missed
   or a count differs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, bench/ is sys.path[0]; we need the project

from bench.common import (  # noqa: E402
    PG,
    VENV_BIN,
    checkpoint,
    drop_database,
    load_note,
    manage,
    recreate_database,
    stepper,
)

TARGET_SECONDS = 60.0
TARGET_RATIO = 0.3
TARGET_RESTORE_FACTOR = 2.0
HOURLY = [
    "members_member",
    "campaigns_delivery",
    "campaigns_trackingevent",
    "campaigns_deliveryactivity",
    "campaigns_memberactivity",
    "campaigns_campaignstats",
    "campaigns_linkstats",
    "campaigns_campaignhourly",
    "campaigns_bounce",
    "campaigns_unsubscribe",
]


def environment(database: str, work: Path, backup_key: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENV_FILE": "/dev/null",
        "DJANGO_SETTINGS_MODULE": "heyloyalty.settings",
        "DATABASE_URL": f"{PG}/{database}",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "FIELD_ENCRYPTION_KEYS": f"f1:{Fernet.generate_key().decode()}",
        "BACKUP_ENCRYPTION_KEYS": backup_key,
        "BACKUP_DIR": str(work / "backups"),
        "BACKUP_MIN_FREE_BYTES": "0",
        "BACKUP_S3_BUCKET": "",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }


PARENTS = """
import json
from accounts.models import Account
from campaigns.models import Campaign
from members.models import List
account = Account.objects.create(name="Bench ApS")
member_list = List.objects.create(account=account, name="Nyhedsbrev")
campaign = Campaign.objects.create(account=account, name="Forår", subject="Forår", status="sent")
print(json.dumps([account.pk, member_list.pk, campaign.pk]))
"""


def fill(env: dict[str, str], dsn: str, members: int, events: int, step: Any) -> None:
    """The account, list and campaign through the ORM (whatever columns they have by
    now); the bulk by PostgreSQL itself (INSERT … SELECT from generate_series)."""
    made = subprocess.run(  # noqa: S603 - our own manage.py
        [str(VENV_BIN / "python"), "manage.py", "shell", "-c", PARENTS],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    _, member_list, campaign = json.loads(made.stdout.strip().splitlines()[-1])
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        step(f"members: {members:,}")
        cursor.execute(
            """
            INSERT INTO members_member (id, list_id, email, mobile, email_key, mobile_key, data,
                status, email_status, mobile_status, consent_source, consent_ip, consent_at,
                consent_text, imported, optin_sent_at, obscured_at, sent_mail, open_rate,
                created_at, updated_at)
            SELECT gen_random_uuid(), %(list)s, e, '', e, NULL,
                jsonb_build_object(
                    'firstname', (ARRAY['Søren', 'Åse', 'Mette', 'Jens', 'Bjørn'])[g %% 5 + 1],
                    'lastname', (ARRAY['Hansen', 'Jørgensen', 'Møller', 'Kjær'])[g %% 4 + 1],
                    'city', (ARRAY['København K', 'Aarhus C', 'Næstved', 'Køge'])[g %% 4 + 1],
                    'points', g %% 1000),
                'active', 'active', 'active', 'import', '192.0.2.1', now(), '', true, NULL, NULL,
                3, 40, now() - g * interval '1 second', now()
            FROM generate_series(1, %(n)s) g, LATERAL (SELECT 'reader' || g || '@mail' || (g %% 97)
                || '.example.dk' AS e) x
            """,
            {"list": member_list, "n": members},
        )
        step(f"deliveries: {members:,}")
        cursor.execute(
            "INSERT INTO campaigns_delivery (campaign_id, member_id, email, occurrence, status,"
            " attempts, claimed_by, sent_at, error) SELECT %s, id, email, '', 'sent', 1, '',"
            " now(), '' FROM members_member",
            [campaign],
        )
        cursor.execute("SELECT min(id) FROM campaigns_delivery")
        (first,) = cursor.fetchone() or (1,)
        step(f"events: {events:,}")
        cursor.execute(
            """
            INSERT INTO campaigns_trackingevent (event_id, delivery_id, campaign_id, member_id,
                kind, position, machine, ip, user_agent, created_at)
            SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7'
                    || substr(r, 1, 3) || '8' || substr(r, 4, 15))::uuid,
                d.id, %(campaign)s, d.member_id,
                CASE WHEN g %% 4 = 0 THEN 'click' ELSE 'open' END,
                CASE WHEN g %% 4 = 0 THEN g %% 5 END, g %% 10 = 0, '203.0.113.0',
                'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari',
                at
            FROM generate_series(1, %(n)s) g
            CROSS JOIN LATERAL (SELECT now() - (%(n)s - g) * interval '100 milliseconds' AS at,
                md5(g::text) AS r) t
            JOIN campaigns_delivery d ON d.id = %(first)s + (g::bigint * 7919) %% %(members)s
            ORDER BY g
            """,
            {"campaign": campaign, "n": events, "first": first, "members": members},
        )
        step("first opens, counters")
        cursor.execute(
            "INSERT INTO campaigns_deliveryactivity (delivery_id, opened_at, clicked_at, positions)"
            " SELECT delivery_id, min(created_at), min(created_at) FILTER (WHERE kind = 'click'),"
            " '{}' FROM campaigns_trackingevent GROUP BY delivery_id"
        )
        cursor.execute(
            "INSERT INTO campaigns_memberactivity (member_id, opened, clicked) SELECT member_id,"
            " count(*) FILTER (WHERE kind = 'open'), count(*) FILTER (WHERE kind = 'click')"
            " FROM campaigns_trackingevent GROUP BY member_id"
        )
        cursor.execute(
            "INSERT INTO campaigns_campaignstats (campaign_id, opens, unique_opens, clicks,"
            " unique_clicks, machine_opens, unique_machine_opens, machine_clicks,"
            " unique_machine_clicks, updated_at) VALUES (%s, %s, %s, %s, %s, 0, 0, 0, 0, now())",
            [campaign, events * 3 // 4, members // 2, events // 4, members // 4],
        )
        step("VACUUM ANALYZE")
        cursor.execute("VACUUM ANALYZE")
    connection.close()


def plain_copy(dsn: str) -> tuple[float, int, int]:
    """``COPY t TO STDOUT`` of the hourly tables, thrown away: seconds, rows, bytes."""
    connection = psycopg2.connect(dsn)
    rows = size = 0
    started = time.perf_counter()
    with connection.cursor() as cursor, open(os.devnull, "wb") as sink:
        counting = _Counting(sink)
        for table in HOURLY:
            cursor.copy_expert(f'COPY "{table}" TO STDOUT', counting)
            rows += cursor.rowcount
        size = counting.size
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, rows, size


class _Counting:
    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return int(self.sink.write(data))


def command(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [str(VENV_BIN / "python"), "manage.py", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed, json.loads(result.stdout)


def timed(args: list[str]) -> float:
    """Run a PostgreSQL client program; its wall time."""
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)  # noqa: S603 - fixed programs
    return time.perf_counter() - started


def counts(dsn: str) -> dict[str, int]:
    connection = psycopg2.connect(dsn)
    out = {}
    with connection.cursor() as cursor:
        for table in HOURLY:
            cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - our own names  # nosec B608
            (out[table],) = cursor.fetchone() or (0,)
    connection.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--database", default="bench_backup")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    step = stepper()
    target_db, baseline_db = f"{args.database}_restore", f"{args.database}_pg_restore"
    dsn, target_dsn = f"{PG}/{args.database}", f"{PG}/{target_db}"
    baseline_dsn = f"{PG}/{baseline_db}"
    backup_key = f"b1:{time.strftime('%Y-%m-%d')}:{Fernet.generate_key().decode()}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
            work = Path(tmp)
            env = environment(args.database, work, backup_key)
            step(f"database {args.database}: create and migrate")
            recreate_database(args.database)
            manage(env, "migrate", "--noinput", "-v", "0")
            fill(env, dsn, args.members, args.events, step)
            checkpoint(dsn)

            step(f"plain COPY TO of the hourly tables ({load_note()})")
            copy_before = plain_copy(dsn)
            step(f"  {copy_before[0]:.1f} s, {copy_before[1]:,} rows, {copy_before[2]:,} bytes")

            load_backup = load_note()
            step(f"hourly backup ({load_backup})")
            backup_wall, hourly = command(env, "backup_create", "--kind", "hourly")
            step(f"  {backup_wall:.1f} s wall, {hourly['duration']:.1f} s run")
            _, three_hourly = command(env, "backup_create", "--kind", "three_hourly")

            step(f"plain COPY TO again ({load_note()})")
            copy_after = plain_copy(dsn)
            step(f"  {copy_after[0]:.1f} s")
            copy_seconds = min(copy_before[0], copy_after[0])

            step(f"database {target_db}: create and migrate (not timed)")
            recreate_database(target_db)
            manage({**env, "DATABASE_URL": target_dsn}, "migrate", "--noinput", "-v", "0")
            checkpoint(target_dsn)
            load_restore = load_note()
            step(f"full restore ({load_restore})")
            restore_wall, restored = command(
                env, "backup_restore", three_hourly["path"], hourly["path"],
                "--database-url", target_dsn,
            )  # fmt: skip
            step(f"  {restore_wall:.1f} s wall, {restored['duration']:.1f} s run")
            source, copy = counts(dsn), counts(target_dsn)
            drop_database(target_db)  # its disk, before the baseline makes another copy

            step(f"baseline: pg_dump -Fc -Z 1 of the whole database ({load_note()})")
            dump = work / "baseline.dump"
            dump_seconds = timed(["pg_dump", "-Fc", "-Z", "1", "-f", str(dump), dsn])
            step(f"  {dump_seconds:.1f} s, {dump.stat().st_size / 1e6:,.0f} MB")
            recreate_database(baseline_db)
            checkpoint(baseline_dsn)
            load_baseline = load_note()
            step(f"baseline: pg_restore -j 2 into an empty database ({load_baseline})")
            pg_restore_seconds = timed(
                ["pg_restore", "-j", "2", "--no-owner", "-d", baseline_dsn, str(dump)]
            )
            step(f"  {pg_restore_seconds:.1f} s")
            if counts(baseline_dsn) != source:
                raise RuntimeError("pg_restore did not bring every row back")
    finally:
        if not args.keep_database:
            drop_database(args.database)
            drop_database(target_db)
            drop_database(baseline_db)

    rows = copy_before[1]
    ratio = copy_seconds / hourly["duration"]
    factor = restored["duration"] / hourly["duration"]
    checks = {
        f"hourly backup under {TARGET_SECONDS:.0f} s (wall, with Django's start)": backup_wall
        < TARGET_SECONDS,
        f"throughput at least {TARGET_RATIO} x plain COPY TO": ratio >= TARGET_RATIO,
        f"full restore at most {TARGET_RESTORE_FACTOR} x the backup": factor
        <= TARGET_RESTORE_FACTOR,
        "every row restored": source == copy,
    }
    per_s = rows / hourly["duration"]
    print()
    print(
        f"rows in the hourly backup   {rows:,} ({args.members:,} members, {args.events:,} events)"
    )
    print(
        f"plain COPY TO               {copy_before[0]:.1f} s before, {copy_after[0]:.1f} s after"
        f" ({rows / copy_seconds:,.0f} rows/s, {copy_before[2] / 1e6:,.0f} MB of text)"
    )
    print(
        f"hourly backup               {hourly['duration']:.1f} s run, {backup_wall:.1f} s wall"
        f" ({per_s:,.0f} rows/s), file {hourly['size'] / 1e6:,.0f} MB; {load_backup}"
    )
    print(f"throughput vs plain COPY    {ratio:.2f} x")
    print(
        f"full restore (both files)   {restored['duration']:.1f} s run, {restore_wall:.1f} s wall"
        f" = {factor:.2f} x the backup; {load_restore}"
    )
    print(
        f"baseline                    pg_dump -Fc -Z 1 {dump_seconds:.1f} s; pg_restore -j 2"
        f" {pg_restore_seconds:.1f} s (ours: {restored['duration'] / pg_restore_seconds:.2f} x"
        f" pg_restore's time); {load_baseline}"
    )
    for name, ok in checks.items():
        print(f"{'MET ' if ok else 'MISS'} {name}")
    if source != copy:
        print(f"counts differ: {source} vs {copy}", file=sys.stderr)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
