"""Tracking benchmark (issue 5): the open pixel and the click redirect under load, then
the statistics page of a big campaign.

    .venv/bin/python bench/tracking.py [--seconds 30] [--connections 64]

1. Recreate our own database (``bench_tracking`` on 127.0.0.1:5432) and migrate it; use
   Redis database 12 on 127.0.0.1:6379 (emptied first: it is this benchmark's alone).
   Make an account, a list with ``--deliveries`` members and a campaign sent to them an
   hour ago (one Delivery each, five tracked links; then ANALYZE, as autovacuum would
   have in that hour), and write the open and click URLs of ``--tokens`` random
   recipients (seven opens to three clicks) into a Lua script.
2. Start the web server exactly as the Procfile's ``web`` line does (``python -m
   heyloyalty.web``: granian serving ``heyloyalty.wsgi``; ``--web`` runs another command
   instead, to compare servers) with production settings (DEBUG off, a fresh strong
   SECRET_KEY, ENV_FILE=/dev/null; only the TLS redirect is off, no proxy in front), and
   a flusher process (``manage.py tracking_flush --every 5``, what beat does every 5 s;
   ``--flush-every``) writing the buffer to PostgreSQL while the load runs.
3. wrk (one thread, ``--connections`` keep-alive connections): a warm-up, then
   ``--seconds`` against the tracking URLs, picked at random per request. Then wait until
   the flusher has emptied the buffer.
4. The same load, on the same server, against ``GET /healthz`` (a no-op Django view: the
   baseline) and against an open URL with a token that is not ours, which the layer in
   front of Django answers 404 from the token alone (no Redis, no database): the floor of
   what any request costs on this stack. Check that the events stored equal the hits
   answered: exactly those the server's access log shows answered 200 (pixel) or 302
   (click), which is what wrk completed plus at most one request per connection that wrk
   cut off when it stopped; and that the counters agree with the events. Print the CPU
   the flusher and PostgreSQL spent per event, from the first hit to the empty buffer.
5. Statistics at scale: a second campaign with ``--stats-deliveries`` deliveries and
   ``--stats-events`` events, counters and roll-ups, written with generate_series; time
   the report page (signed in) and ``GET /loyalty/v1/campaigns/{id}/statistics`` against
   the web server, and the same for the small campaign, to show the cost does not grow.

Prints every figure with the CPU seconds of our processes and of everyone else's (the
machine is shared: a figure is worth the quiet it was measured in). Exits 1 when a
count is wrong or a target is missed. Stops what it started and drops the database,
also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
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
    checkpoint,
    free_port,
    interrupted,
    migrated_database,
    print_logs,
    process,
    stepper,
    wait_for,
)

TARGET_RPS = 3_000
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.5
TARGET_PAGE_MS = 200.0
LINKS = 5
OPENS_PER_CLICK = 7 / 3
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)

# One Lua state per wrk thread; done() reads every thread's counters back.
LUA = r"""
local paths = dofile("%(paths)s")
local expect = { %(expect)s }
local headers = { ["Host"] = "127.0.0.1", ["User-Agent"] = "%(agent)s" }
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

sent, ok, other = 0, 0, 0

function init(args)
  math.randomseed(os.time() * 100 + tid)
end

function request()
  sent = sent + 1
  return wrk.format("GET", paths[math.random(#paths)], headers)
end

function response(status, hdrs, body)
  if expect[status] then ok = ok + 1 else
    other = other + 1
    if other <= 3 then io.stderr:write("unexpected ", status, "\n") end
  end
end

function done(summary, latency, requests)
  local total = {sent = 0, ok = 0, other = 0}
  for _, t in ipairs(threads) do
    total.sent = total.sent + t:get("sent")
    total.ok = total.ok + t:get("ok")
    total.other = total.other + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "sent": %%d, "ok": %%d, "unexpected": %%d, ' ..
    '"errors": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, total.sent, total.ok, total.other,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk run, from its Lua done() hook, and the CPU seconds spent meanwhile."""

    name: str
    requests: int
    seconds: float
    ok: int
    unexpected: int
    errors: int
    sent: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cut_off(self) -> int:
        """Sent and never answered because wrk stopped (wrk calls request() once more
        than it sends, to check the script)."""
        return max(0, self.sent - 1 - self.ok - self.unexpected)


@dataclass(frozen=True)
class Seeded:
    campaign_id: int
    deliveries: int
    opens: int  # URLs written for wrk
    clicks: int
    paths_file: Path


# ---------------------------------------------------------------------------- the set-up


def _environment(database: str, redis: str, port: int, work: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "ENV_FILE": "/dev/null",
        "DJANGO_SETTINGS_MODULE": "heyloyalty.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "FIELD_ENCRYPTION_KEYS": f"k1:{Fernet.generate_key().decode()}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": redis,
        # Plain HTTP on loopback: no proxy terminates TLS here.
        "SECURE_SSL_REDIRECT": "0",
        "BIND": f"127.0.0.1:{port}",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "IMPORT_DIR": str(work / "imports"),
        "LOG_LEVEL": "WARNING",
        # No collectstatic here (it writes into the working tree): plain static URLs
        # instead of the manifest's hashed ones, a dictionary lookup either way.
        "STATIC_MANIFEST": "0",
    }


def seed(deliveries: int, tokens: int, work: Path) -> Seeded:
    """An account, a list, its members and a campaign sent to them an hour ago."""
    import django

    django.setup()
    from django.db import connection

    from accounts.models import ManagerAccess
    from accounts.services import account_create
    from campaigns.models import Campaign, CampaignStatus, Link
    from campaigns.tokens import click_token, open_token
    from members.services import list_create

    account = account_create(name="Tracking Bench ApS", manager_access=ManagerAccess.ALLOWED)
    member_list = list_create(account=account, name="Bench")
    campaign = Campaign.objects.create(
        account=account, name="Bench campaign", subject="Hi", status=CampaignStatus.SENT
    )
    with connection.cursor() as cursor:
        _seed_members_and_deliveries(cursor, member_list.pk, campaign.pk, deliveries, "2 hours")
        # The statistics autovacuum would have gathered in the hour since the send.
        cursor.execute("ANALYZE")
        cursor.execute("SELECT id FROM campaigns_delivery WHERE campaign_id = %s", [campaign.pk])
        ids = [row[0] for row in cursor.fetchall()]
    Link.objects.bulk_create(
        Link(campaign=campaign, position=p, url=f"https://shop.example/product/{p}?utm=bench")
        for p in range(LINKS)
    )
    rng = random.Random(5)  # noqa: S311 - test data, not secrets
    chosen = rng.sample(ids, min(tokens, len(ids)))
    clicks = round(len(chosen) / (1 + OPENS_PER_CLICK))
    paths = [f"/o/{open_token(i)}.gif" for i in chosen[clicks:]]
    paths += [f"/c/{click_token(i, rng.randrange(LINKS))}" for i in chosen[:clicks]]
    paths_file = work / "paths.lua"
    paths_file.write_text("return {\n" + ",\n".join(f'"{p}"' for p in paths) + "\n}\n")
    connection.close()
    return Seeded(campaign.pk, len(ids), len(paths) - clicks, clicks, paths_file)


def _seed_members_and_deliveries(
    cursor: Any, list_id: int, campaign_id: int, count: int, ago: str
) -> None:
    cursor.execute(
        """INSERT INTO members_member (id, list_id, email, mobile, email_key, data, status,
               email_status, mobile_status, consent_source, consent_text, imported, sent_mail,
               open_rate, created_at, updated_at)
           SELECT gen_random_uuid(), %s, 'm' || g || '-' || %s || '@bench.example', '',
                  'm' || g || '-' || %s || '@bench.example', '{}', 'active', 'active',
                  'active', 'bench', '', true, 1, 0,
                  now() - interval '30 days' * random(), now()
           FROM generate_series(1, %s) g""",
        [list_id, campaign_id, campaign_id, count],
    )
    cursor.execute(
        """INSERT INTO campaigns_delivery (campaign_id, member_id, email, occurrence, status,
               attempts, claimed_by, error, sent_at)
           SELECT %s, m.id, m.email, '', 'sent', 1, '', '', now() - %s::interval
           FROM members_member m WHERE m.list_id = %s AND m.email LIKE %s
           ORDER BY m.created_at""",
        [campaign_id, ago, list_id, f"%-{campaign_id}@bench.example"],
    )
    cursor.execute(
        """UPDATE campaigns_campaign SET recipients = %s, sent = %s,
               started_at = now() - %s::interval, prepared_at = now() - %s::interval,
               finished_at = now() - %s::interval
           WHERE id = %s""",
        [count, count, ago, ago, ago, campaign_id],
    )


# ------------------------------------------------------------------------------ the load


def redis_root(args: argparse.Namespace) -> dict[str, int]:
    """The Redis server we use, if it runs on this machine, for its CPU seconds."""
    port = str(args.redis_url.rsplit(":", 1)[-1].split("/")[0])
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "redis-server" and port in " ".join(proc.info["cmdline"] or []):
            return {"redis": proc.pid}
    return {}


def web_command(override: str | None) -> list[str]:
    """The Procfile's web command (or ``--web``), its program taken from our venv."""
    line = override or next(
        x.partition(":")[2]
        for x in (ROOT / "Procfile").read_text().splitlines()
        if x.partition(":")[0].strip() == "web"
    )
    program, *rest = shlex.split(line)
    if (VENV_BIN / program).exists():
        program = str(VENV_BIN / program)
    return [program, *rest]


def web_is_up(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
        return connection.getresponse().status == 200
    except OSError:
        return False


def run_wrk(
    name: str,
    *,
    target: str,
    seconds: int,
    connections: int,
    lua: Path,
    cpu: CpuAccount,
) -> Run:
    cpu.begin()
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 - our own argv, no shell
        [
            shutil.which("wrk") or "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(lua),
            target,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    spent = cpu.end()
    wall = time.perf_counter() - started
    if completed.stderr.strip():
        print(completed.stderr.strip(), file=sys.stderr)
    line = next((x for x in completed.stdout.splitlines() if x.startswith("RESULT ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stdout}")
    f: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return Run(
        name=name,
        requests=f["requests"],
        seconds=f["duration_us"] / 1e6,
        ok=f["ok"],
        unexpected=f["unexpected"],
        errors=f["errors"],
        sent=f["sent"],
        p50_ms=f["p50_us"] / 1000,
        p90_ms=f["p90_us"] / 1000,
        p99_ms=f["p99_us"] / 1000,
        max_ms=f["max_us"] / 1000,
        cpu={k: v / wall for k, v in spent.items()},  # cores
    )


def lua_script(work: Path, name: str, paths: Path, expect: tuple[int, ...]) -> Path:
    script = work / f"{name}.lua"
    script.write_text(
        LUA
        % {
            "paths": paths,
            "expect": ", ".join(f"[{s}] = true" for s in expect),
            "agent": USER_AGENT,
        }
    )
    return script


def buffer_waiting(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    return int(client.llen("hl:tracking")) + int(client.llen("hl:tracking:processing"))


def drain(redis_url: str, flusher: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until the flusher has emptied the buffer (and finished its batch)."""
    started = time.perf_counter()
    wait_for(lambda: buffer_waiting(redis_url) == 0, "draining the buffer", timeout, flusher)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- the checks


HIT_LINE = re.compile(r'"GET (/[oc])/[^ ]+ HTTP/1\.[01]" (\d{3}) ')


def answered_hits(access_log: Path, size: int) -> dict[str, int]:
    """Hits the web server answered as recorded: pixel 200, click 302, from the first ``size``
    bytes of its access log (what came before the baseline runs)."""
    found = {"/o": 0, "/c": 0, "other": 0}
    with access_log.open("rb") as log:
        text = log.read(size).decode(errors="replace")
    for match in HIT_LINE.finditer(text):
        kind, status = match.group(1), match.group(2)
        good = (kind == "/o" and status == "200") or (kind == "/c" and status == "302")
        found[kind if good else "other"] += 1
    return found


def check_events(
    dsn: str, campaign_id: int, answered: dict[str, int], runs: list[Run]
) -> list[str]:
    """Problems: stored events against hits answered, counters against events."""
    problems = []
    connection = psycopg2.connect(dsn)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, machine, count(*) FROM campaigns_trackingevent WHERE campaign_id = %s "
            "GROUP BY 1, 2",
            [campaign_id],
        )
        events = {(k, m): n for k, m, n in cursor.fetchall()}
        cursor.execute(
            "SELECT opens, unique_opens, clicks, unique_clicks, machine_opens, "
            "unique_machine_opens, machine_clicks, unique_machine_clicks "
            "FROM campaigns_campaignstats WHERE campaign_id = %s",
            [campaign_id],
        )
        stats = cursor.fetchone() or (0,) * 8
        cursor.execute(
            "SELECT coalesce(sum(opens + machine_opens), 0), coalesce(sum(clicks + "
            "machine_clicks), 0) FROM campaigns_campaignhourly WHERE campaign_id = %s",
            [campaign_id],
        )
        hourly = cursor.fetchone() or (0, 0)
        cursor.execute(
            "SELECT coalesce(sum(clicks + machine_clicks), 0), coalesce(sum(unique_clicks), 0) "
            "FROM campaigns_linkstats WHERE campaign_id = %s",
            [campaign_id],
        )
        links = cursor.fetchone() or (0, 0)
        cursor.execute(
            "SELECT count(*) FILTER (WHERE opened_at IS NOT NULL), count(*) FILTER (WHERE "
            "clicked_at IS NOT NULL) FROM campaigns_deliveryactivity a JOIN campaigns_delivery "
            "d ON d.id = a.delivery_id WHERE d.campaign_id = %s",
            [campaign_id],
        )
        firsts = cursor.fetchone() or (0, 0)
    connection.close()
    opens = events.get(("open", False), 0) + events.get(("open", True), 0)
    clicks = events.get(("click", False), 0) + events.get(("click", True), 0)
    completed = sum(r.ok for r in runs)
    cut_off = sum(r.cut_off for r in runs)
    print(
        f"\nhits answered (access log): {answered['/o']:,} opens + {answered['/c']:,} clicks "
        f"= {answered['/o'] + answered['/c']:,}; other answers {answered['other']}"
    )
    print(
        f"events stored:              {opens:,} opens + {clicks:,} clicks = {opens + clicks:,} "
        f"(machine: {events.get(('open', True), 0):,} opens, "
        f"{events.get(('click', True), 0):,} clicks)"
    )
    print(f"wrk completed:              {completed:,} (+ at most {cut_off} cut off in flight)")
    if (opens, clicks) != (answered["/o"], answered["/c"]):
        problems.append(
            f"stored {opens} opens and {clicks} clicks, answered {answered['/o']} and "
            f"{answered['/c']}"
        )
    if not completed <= opens + clicks <= completed + cut_off:
        problems.append(f"{opens + clicks} events for {completed} completed (+{cut_off}) requests")
    if answered["other"]:
        problems.append(f"{answered['other']} tracking hits answered neither 200 nor 302")
    s_opens, s_uopens, s_clicks, s_uclicks, s_mopens, s_umopens, s_mclicks, _ = stats
    if s_clicks + s_mclicks != clicks:
        problems.append(f"click counters {s_clicks}+{s_mclicks}, click events {clicks}")
    if s_opens + s_mopens < opens:  # plus the opens that clicks imply
        problems.append(f"open counters {s_opens}+{s_mopens}, open events {opens}")
    if tuple(hourly) != (s_opens + s_mopens, s_clicks + s_mclicks):
        problems.append(f"hourly roll-ups {hourly} disagree with the counters")
    if links[0] != clicks or links[1] != s_uclicks:
        problems.append(f"link counters {links}, clicks {clicks}, unique {s_uclicks}")
    if tuple(firsts) != (s_uopens, s_uclicks):
        problems.append(f"first opens/clicks {firsts}, counters {(s_uopens, s_uclicks)}")
    print(
        f"counters:                   {s_uopens:,} opened / {s_opens:,} opens, "
        f"{s_uclicks:,} clicked / {s_clicks:,} clicks; machine {s_umopens:,} / {s_mopens:,} "
        f"opens, {s_mclicks:,} clicks"
    )
    return problems


# ------------------------------------------------------------------- statistics at scale


def seed_big_campaign(dsn: str, deliveries: int, events: int, step: Any) -> int:
    """A campaign sent 20 days ago to ``deliveries`` recipients with ``events`` events
    over those days, and the counters the flusher would have kept for them."""
    from campaigns.models import Campaign, CampaignStatus  # django.setup() is done: seed()

    small = Campaign.objects.get(name="Bench campaign")
    # Through the model, so that columns added later get their defaults.
    campaign_id = Campaign.objects.create(
        account_id=small.account_id,
        name="Big campaign",
        subject="Hi",
        from_email="news@bench.example",
        html="<p>Hi</p>",
        tracking=True,
        status=CampaignStatus.SENT,
    ).pk
    account_id = small.account_id
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT list_id FROM members_member LIMIT 1")
        (list_id,) = cursor.fetchone() or (0,)
        _seed_members_and_deliveries(cursor, list_id, campaign_id, deliveries, "20 days")
        step(f"big campaign: {deliveries:,} members and deliveries written")
        cursor.execute(
            """INSERT INTO campaigns_link (campaign_id, position, url)
               SELECT %s, p, 'https://shop.example/big/' || p FROM generate_series(0, 19) p""",
            [campaign_id],
        )
        cursor.execute(
            "SELECT min(id), max(id) FROM campaigns_delivery WHERE campaign_id = %s", [campaign_id]
        )
        first, last = cursor.fetchone() or (0, 0)
        # Faster without the secondary indexes; they are made again (same names) after.
        cursor.execute(
            "ALTER TABLE campaigns_trackingevent "
            "DROP CONSTRAINT campaigns_trackingevent_event_id_key"
        )
        cursor.execute("DROP INDEX trackingevent_member, trackingevent_campaign")
        cursor.execute(
            """INSERT INTO campaigns_trackingevent (event_id, delivery_id, campaign_id, member_id,
                   kind, position, machine, ip, user_agent, created_at)
               SELECT gen_random_uuid(), d, %s, NULL,
                      CASE WHEN g %% 4 = 0 THEN 'click' ELSE 'open' END,
                      CASE WHEN g %% 4 = 0 THEN g %% 20 END, g %% 7 = 0,
                      '203.0.113.0', 'Mozilla/5.0 (bench)',
                      now() - interval '20 days' + interval '1 second' * (g %% 1728000)
               FROM (SELECT g, %s + (g::bigint * 7919) %% (%s - %s + 1) AS d
                     FROM generate_series(1, %s) g) s""",
            [campaign_id, first, last, first, events],
        )
        step(f"big campaign: {events:,} events written")
        cursor.execute(
            "ALTER TABLE campaigns_trackingevent ADD CONSTRAINT "
            "campaigns_trackingevent_event_id_key UNIQUE (event_id)"
        )
        cursor.execute(
            "CREATE INDEX trackingevent_member ON campaigns_trackingevent "
            "(member_id, created_at DESC)"
        )
        cursor.execute(
            "CREATE INDEX trackingevent_campaign ON campaigns_trackingevent "
            "(campaign_id, created_at)"
        )
        step("big campaign: the events' indexes made again")
        # The roll-ups and counters, as the flusher keeps them: from the events.
        cursor.execute(
            """INSERT INTO campaigns_campaignhourly (campaign_id, hour, opens, clicks,
                   machine_opens, machine_clicks)
               SELECT campaign_id, date_trunc('hour', created_at),
                      count(*) FILTER (WHERE kind = 'open' AND NOT machine),
                      count(*) FILTER (WHERE kind = 'click' AND NOT machine),
                      count(*) FILTER (WHERE kind = 'open' AND machine),
                      count(*) FILTER (WHERE kind = 'click' AND machine)
               FROM campaigns_trackingevent WHERE campaign_id = %s GROUP BY 1, 2""",
            [campaign_id],
        )
        cursor.execute(
            """INSERT INTO campaigns_linkstats (campaign_id, position, clicks, unique_clicks,
                   machine_clicks)
               SELECT campaign_id, position, count(*) FILTER (WHERE NOT machine),
                      count(DISTINCT delivery_id) FILTER (WHERE NOT machine),
                      count(*) FILTER (WHERE machine)
               FROM campaigns_trackingevent WHERE campaign_id = %s AND kind = 'click'
               GROUP BY 1, 2""",
            [campaign_id],
        )
        cursor.execute(
            """INSERT INTO campaigns_campaignstats (campaign_id, opens, unique_opens, clicks,
                   unique_clicks, machine_opens, unique_machine_opens, machine_clicks,
                   unique_machine_clicks, updated_at)
               SELECT %s, sum(opens), %s * 0.45, sum(clicks), %s * 0.12, sum(machine_opens),
                      %s * 0.2, sum(machine_clicks), %s * 0.02, now()
               FROM campaigns_campaignhourly WHERE campaign_id = %s""",
            [campaign_id, deliveries, deliveries, deliveries, deliveries, campaign_id],
        )
        cursor.execute(
            """INSERT INTO campaigns_bounce (account_id, campaign_id, email, kind, source,
                   reason, created_at)
               SELECT %s, %s, 'b' || g || '@bench.example',
                      CASE WHEN g %% 3 = 0 THEN 'soft' ELSE 'hard' END, 'smtp', '', now()
               FROM generate_series(1, %s) g""",
            [account_id, campaign_id, deliveries // 50],
        )
        cursor.execute(
            """INSERT INTO campaigns_unsubscribe (account_id, campaign_id, list_id, source,
                   created_at)
               SELECT %s, %s, %s, 'page', now() FROM generate_series(1, %s) g""",
            [account_id, campaign_id, list_id, deliveries // 200],
        )
        step("big campaign: counters, roll-ups, bounces and unsubscribes written")
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    return int(campaign_id)


@dataclass(frozen=True)
class PageTiming:
    name: str
    first_ms: float  # the first view: a finished campaign's recipients are counted once
    median_ms: float
    p95_ms: float
    worst_ms: float


def time_get(port: int, path: str, headers: dict[str, str], name: str, rounds: int) -> PageTiming:
    """The first GET, then one more to warm up, then ``rounds`` timed ones."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    took = []
    for _ in range(rounds + 2):
        started = time.perf_counter()
        connection.request("GET", path, headers={"Host": "127.0.0.1", **headers})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status} {body[:300]!r}")
        took.append((time.perf_counter() - started) * 1000)
    connection.close()
    first, timed = took[0], sorted(took[2:])
    p95 = timed[max(0, int(len(timed) * 0.95) - 1)]
    return PageTiming(name, first, statistics.median(timed), p95, timed[-1])


def sessions_and_keys() -> tuple[str, str, str]:
    """A signed-in session cookie of the account's owner, and an API key and secret."""
    import django

    django.setup()
    from django.test import Client

    from accounts.models import Account, Role
    from accounts.services import apikey_create, user_create

    account = Account.objects.get(name="Tracking Bench ApS")
    owner = user_create(
        email="owner@bench.example",
        role=Role.OWNER,
        password=secrets.token_urlsafe(16),
        account=account,
        must_change_password=False,
    )
    client = Client()
    client.force_login(owner)
    key, secret = apikey_create(account=account, name="bench")
    return client.cookies["sessionid"].value, key.key, secret


def time_statistics(port: int, small: int, big: int, rounds: int) -> list[PageTiming]:
    from heyloyalty.api.signature import sign

    session, key, secret = sessions_and_keys()
    cookie = {"Cookie": f"sessionid={session}"}
    timings = []
    for name, campaign_id in (("small", small), ("big", big)):
        signed = sign(key, secret, formatdate(time.time(), usegmt=True))
        timings.append(
            time_get(port, f"/campaigns/{campaign_id}/", cookie, f"report page, {name}", rounds)
        )
        timings.append(
            time_get(
                port,
                f"/loyalty/v1/campaigns/{campaign_id}/statistics",
                signed,
                f"API statistics, {name}",
                rounds,
            )
        )
    return timings


# ---------------------------------------------------------------------------- the report


def report_run(run: Run) -> None:
    cpu = run.cpu
    print(
        f"{run.name:<24} {run.rps:8,.0f} req/s  p50 {run.p50_ms:6.1f} ms  p90 {run.p90_ms:6.1f} "
        f"ms  p99 {run.p99_ms:6.1f} ms  max {run.max_ms:7.1f} ms  errors {run.errors}  "
        f"unexpected {run.unexpected}  ({run.requests:,} in {run.seconds:.1f} s)"
    )
    per_request = cpu.get("web", 0) * run.seconds / max(1, run.requests) * 1000
    print(
        f"{'':<24} web server CPU per request {per_request:.3f} ms; cores: web server "
        f"{cpu.get('web', 0):.2f}, flusher {cpu.get('flusher', 0):.2f}, "
        f"PostgreSQL {cpu.get('postgres', 0):.2f}, wrk+bench {cpu.get('bench', 0):.2f}, "
        f"Redis {cpu.get('redis', 0):.2f}, others {cpu.get('others', 0):.2f}"
    )


def targets(load: Run, noop: Run, pages: list[PageTiming]) -> list[str]:
    misses = []
    if load.rps < TARGET_RPS:
        misses.append(f"{load.rps:,.0f} req/s < {TARGET_RPS:,}")
    if load.p99_ms >= TARGET_P99_MS:
        misses.append(f"p99 {load.p99_ms:.1f} ms >= {TARGET_P99_MS:.0f} ms")
    if load.rps < TARGET_RATIO * noop.rps:
        misses.append(f"{load.rps / noop.rps:.2f} of the no-op view < {TARGET_RATIO}")
    if load.errors or load.unexpected:
        misses.append(f"{load.errors} socket errors, {load.unexpected} unexpected answers")
    misses += [
        f"{p.name}: median {p.median_ms:.0f} ms >= {TARGET_PAGE_MS:.0f} ms"
        for p in pages
        if p.median_ms >= TARGET_PAGE_MS
    ]
    return misses


# ------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=30_000, help="recipients wrk hits")
    parser.add_argument("--stats-deliveries", type=int, default=1_000_000)
    parser.add_argument("--stats-events", type=int, default=10_000_000)
    parser.add_argument("--no-stats", action="store_true", help="skip the statistics part")
    parser.add_argument("--rounds", type=int, default=20, help="timed GETs per page")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--database", default="bench_tracking")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--web", help="web server command (default: the Procfile's web line)")
    parser.add_argument(
        "--flush-every", type=float, default=5, help="seconds between flushes (beat's default)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/tracking.py needs wrk: apt-get update && apt-get install -y wrk")
    signal.signal(signal.SIGTERM, interrupted)

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tracking-")))
        logs = work / "logs"
        logs.mkdir()
        port = free_port(args.port)
        env = _environment(args.database, args.redis_url, port, work)
        os.environ.update(env)  # for django.setup() in this process too: the same key
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
    import redis

    dsn = env["DATABASE_URL"]
    step = stepper()
    if (busy := psutil.cpu_percent(interval=1.0)) > 10:
        step(f"warning: the machine is {busy:.0f}% busy before we start; that slows this run")
    migrated_database(args.database, env, keep=args.keep_database, stack=stack)
    redis.Redis.from_url(args.redis_url).flushdb()  # database 12 is this benchmark's own
    step(f"database {args.database} migrated, Redis {args.redis_url} emptied")
    seeded = seed(args.deliveries, args.tokens, work)
    step(
        f"campaign sent to {seeded.deliveries:,}; wrk picks from {seeded.opens:,} open and "
        f"{seeded.clicks:,} click URLs"
    )
    checkpoint(dsn)

    command = web_command(args.web)
    web = stack.enter_context(process("web", command, env, logs))
    wait_for(lambda: web_is_up(port), "the web server", 60, web)
    python = str(VENV_BIN / "python")
    every = str(args.flush_every)
    flusher = stack.enter_context(
        process("flusher", [python, "manage.py", "tracking_flush", "--every", every], env, logs)
    )
    roots = {"web": web.pid, "flusher": flusher.pid, **redis_root(args)}
    cpu = CpuAccount(dsn, args.database, **roots)
    cpu.start()
    stack.callback(cpu.done.set)
    # What writing the hits costs, from the first hit until the buffer is empty again.
    writer_cpu = CpuAccount(dsn, args.database, **roots)
    writer_cpu.start()
    stack.callback(writer_cpu.done.set)
    step(f"web server ({' '.join(command[-3:])}) on :{port} and a flusher are up")

    target = f"http://127.0.0.1:{port}"
    tracked = lua_script(work, "tracking", seeded.paths_file, (200, 302))
    healthz_paths = work / "healthz-paths.lua"
    healthz_paths.write_text('return {"/healthz"}\n')
    noop = lua_script(work, "healthz", healthz_paths, (200,))
    floor_paths = work / "floor-paths.lua"
    floor_paths.write_text(f'return {{"/o/{"a" * 36}.gif"}}\n')  # a token that is not ours
    floor = lua_script(work, "floor", floor_paths, (404,))
    common = {"target": target, "connections": args.connections, "cpu": cpu}
    writer_cpu.begin()
    runs = [run_wrk("tracking warm-up", seconds=args.warmup, lua=tracked, **common)]
    runs.append(run_wrk("tracking", seconds=args.seconds, lua=tracked, **common))
    step(f"tracking load done; {buffer_waiting(args.redis_url):,} hits wait in the buffer")
    drained = drain(args.redis_url, flusher, timeout=600)
    writer = writer_cpu.end()
    step(f"buffer empty {drained:.1f} s after the load")
    time.sleep(1)  # the access log's last lines
    tracking_log_size = (logs / "web.log").stat().st_size
    # After the drain, so that the baseline does not share the cores with the flusher.
    run_wrk("no-op warm-up", seconds=args.warmup, lua=noop, **common)
    baseline = run_wrk("no-op view (/healthz)", seconds=args.seconds, lua=noop, **common)
    # The stack's own cost: a 404 the layer in front of Django answers from the token
    # alone (no Redis, no database), the least any hit can cost on this server.
    stack_floor = run_wrk("stack floor (bad token)", seconds=args.seconds, lua=floor, **common)
    print()
    report_run(runs[1])
    report_run(baseline)
    report_run(stack_floor)
    print(
        f"tracking throughput is {runs[1].rps / baseline.rps:.2f} times the no-op view's and "
        f"{runs[1].rps / stack_floor.rps:.2f} times the stack floor's"
    )
    answered = answered_hits(logs / "web.log", tracking_log_size)
    problems = check_events(dsn, seeded.campaign_id, answered, runs)
    hits = max(1, answered["/o"] + answered["/c"])
    print(
        f"writing the hits (load and drain): flusher {writer['flusher'] / hits * 1000:.3f} + "
        f"PostgreSQL {writer['postgres'] / hits * 1000:.3f} ms of CPU per event"
    )

    pages: list[PageTiming] = []
    if not args.no_stats:
        big = seed_big_campaign(dsn, args.stats_deliveries, args.stats_events, step)
        pages = time_statistics(port, seeded.campaign_id, big, args.rounds)
        print()
        for p in pages:
            print(
                f"{p.name:<26} median {p.median_ms:6.1f} ms  p95 {p.p95_ms:6.1f} ms  "
                f"worst {p.worst_ms:6.1f} ms  ({args.rounds} GETs through the web server); "
                f"first view {p.first_ms:6.1f} ms"
            )
    misses = targets(runs[1], baseline, pages)
    for miss in misses:
        print(f"target missed: {miss}")
    for problem in problems:
        print(f"FAILED: {problem}")
    if not misses and not problems:
        print("all targets met, events and counters right")
    return 1 if misses or problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: the processes this run started are stopped")
