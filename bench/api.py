"""API benchmark (issue 3): signed single-member creates under concurrent clients.

    .venv/bin/python bench/api.py [--seconds 20] [--warmup 3] [--clients 32]

What it does, start to finish:

1. (Re)creates its own database ``bench_api_heyloyalty`` on the machine's PostgreSQL
   (127.0.0.1:5432, user postgres) and migrates it; uses the machine's Redis
   (127.0.0.1:6379, database 13, so other users of db 0 are not disturbed).
2. Makes an account, a list and an API key through the services.
3. Starts gunicorn with ``heyloyalty/gunicorn.py`` and production settings (DEBUG off, a
   fresh strong SECRET_KEY and field key, ``ENV_FILE=/dev/null`` so the local .env does not
   leak in; only the TLS redirect is off, as there is no proxy in front).
4. Drives ``POST /loyalty/v1/lists/{id}/members`` with wrk (keep-alive connections, a Lua
   script that makes a unique email per request; headers signed once with ``sign()``, as
   the PHP client does) for a warm-up and then a measured period.
5. Runs the same load against ``GET /healthz`` on the same server: the cost of Django and
   gunicorn alone, the baseline the API figure is compared with.
6. Checks that every 201 answer is a distinct member of the list and that the list holds no
   other members than requests cut off in flight when wrk stopped; stops gunicorn whatever
   happens.

wrk is the load generator because it is light enough (C, one thread) not to starve the
server on a 2-core machine: ``apt-get update && apt-get install -y wrk``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DB_NAME = "bench_api_heyloyalty"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/13"
TARGET_RPS = 400
TARGET_P99_MS = 200.0

# Written next to the run's files; one Lua state per wrk thread. The globals `ok`, `other`,
# `sent` and `ids` are read back from every thread in done().
LUA = r"""
local method, path, expect = "%(method)s", "%(path)s", %(expect)d
local headers = %(headers)s
local run = "%(run)s"
local ids_file = "%(ids_file)s"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

sent, ok, other, ids = 0, 0, 0, {}

function request()
  sent = sent + 1
  local body = nil
  if method == "POST" then
    body = string.format('{"email": "%%s-%%d-%%d@bench.example", "firstname": "Bench %%d"}',
                         run, tid, sent, sent)
  end
  return wrk.format(method, path, headers, body)
end

function response(status, hdrs, body)
  if status == expect then
    ok = ok + 1
    if method == "POST" then
      ids[#ids + 1] = string.match(body, '"id"%%s*:%%s*"([^"]+)"') or ""
    end
  else
    other = other + 1
    if other <= 3 then io.stderr:write("unexpected ", status, ": ", body:sub(1, 300), "\n") end
  end
end

function done(summary, latency, requests)
  local total = {sent = 0, ok = 0, other = 0}
  local out = io.open(ids_file, "w")
  for _, t in ipairs(threads) do
    total.sent = total.sent + t:get("sent")
    total.ok = total.ok + t:get("ok")
    total.other = total.other + t:get("other")
    for _, id in ipairs(t:get("ids")) do out:write(id, "\n") end
  end
  out:close()
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "sent": %%d, "ok": %%d, "unexpected": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, total.sent, total.ok, total.other,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Load:
    """What one wrk run asks for."""

    name: str
    method: str
    path: str
    expect: int
    headers: dict[str, str]


@dataclass(frozen=True)
class Cpu:
    """Cores used during a run: by gunicorn, its PostgreSQL backends, wrk and the machine.

    What the machine used beyond the first three is other work (other benchmarks, tests),
    which makes figures on a shared machine lower than they would be on a quiet one.
    """

    server: float
    database: float
    wrk: float
    machine: float
    iowait: float

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.server - self.database - self.wrk)


TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def machine_seconds() -> tuple[float, float]:
    """Busy CPU seconds of the whole machine so far (all but idle and iowait), and iowait."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICKS, values[4] / TICKS


def children(pid: int) -> list[int]:
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in path.read_text().split()]
    return found


def database_backends() -> list[int]:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_URL)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [DB_NAME],
            )
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


class CpuMeter:
    """CPU used from now on by gunicorn, its database backends, wrk and the machine."""

    def __init__(self, server: int) -> None:
        # Connections are persistent, so after a warm-up the backends stay the same.
        self.server, self.backends = [server, *children(server)], database_backends()
        self.start_server = process_seconds(self.server)
        self.start_backends = process_seconds(self.backends)
        self.start_children = self._children_seconds()
        self.start_busy, self.start_iowait = machine_seconds()

    @staticmethod
    def _children_seconds() -> float:
        """Waited-for children of this process: wrk, once each run has ended."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def read(self, seconds: float) -> Cpu:
        busy, iowait = machine_seconds()
        return Cpu(
            server=(process_seconds(self.server) - self.start_server) / seconds,
            database=(process_seconds(self.backends) - self.start_backends) / seconds,
            wrk=(self._children_seconds() - self.start_children) / seconds,
            machine=(busy - self.start_busy) / seconds,
            iowait=(iowait - self.start_iowait) / seconds,
        )


@dataclass(frozen=True)
class Result:
    """wrk's figures for one run, from the Lua done() hook."""

    requests: int
    seconds: float
    sent: int
    ok: int
    unexpected: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    ids: list[str]
    cpu: Cpu

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cut_off(self) -> int:
        """Requests sent but never answered because wrk stopped (at most one per connection).

        wrk calls request() once more than it sends, to check the script before starting.
        """
        return self.sent - 1 - self.ok - self.unexpected


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per load")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per load")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--port", type=int, default=8766, help="first port to try")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.py)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: gunicorn.py)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="load generator threads")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip /healthz (quicker, for tuning)"
    )
    args = parser.parse_args()
    # One signed timestamp serves the whole run; it must stay inside the server's window.
    if args.seconds + 2 * args.warmup > 600:
        parser.error("keep the whole run under 10 minutes (the signature's clock window)")
    return args


def hold_run_lock() -> Any:
    """One run at a time: a second one would drop the database under the first."""
    lock = (Path(tempfile.gettempdir()) / f"{DB_NAME}.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit("another bench/api.py run is in progress (it uses the same database)")
    return lock  # the lock lasts as long as the file stays open


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit(
            "bench/api.py needs wrk, the HTTP load generator. On Debian/Ubuntu:\n"
            "    apt-get update && apt-get install -y wrk"
        )
    return path


def free_port(start: int) -> int:
    for port in range(start, start + 100):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    sys.exit(f"no free port in {start}-{start + 99}")


def server_env(port: int, args: argparse.Namespace) -> dict[str, str]:
    """Production settings, except what needs TLS or a proxy in front."""
    from cryptography.fernet import Fernet

    env = {
        "ENV_FILE": "/dev/null",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "FIELD_ENCRYPTION_KEYS": f"k1:{Fernet.generate_key().decode()}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": REDIS_URL,
        # Plain HTTP on loopback: no proxy terminates TLS here.
        "SECURE_SSL_REDIRECT": "0",
        "BIND": f"127.0.0.1:{port}",
        "DJANGO_SETTINGS_MODULE": "heyloyalty.settings",
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["WEB_THREADS"] = str(args.threads)
    return env


def admin_sql(*statements: str) -> None:
    """Run statements on the server's maintenance database, outside a transaction."""
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def recreate_database() -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def prepare_data() -> tuple[int, str, str]:
    """Migrate, then account, list and key through the services: (list id, key, secret)."""
    import django
    import redis
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    from accounts.models import ManagerAccess
    from accounts.services import account_create, apikey_create
    from members.services import list_create

    call_command("migrate", verbosity=0)
    # Redis database 13 is this benchmark's own: start without a previous run's counters.
    redis.Redis.from_url(REDIS_URL).flushdb()
    account = account_create(name="Bench ApS", manager_access=ManagerAccess.ASK)
    member_list = list_create(account=account, name="Bench members")
    api_key, secret = apikey_create(account=account, name="bench")
    connections.close_all()
    return member_list.pk, api_key.key, secret


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn in its own process group, stopped (and its workers with it) on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                # As the Procfile and the Dockerfile start it.
                str(VENV_BIN / "gunicorn"),
                "heyloyalty.wsgi",
                "--config",
                "python:heyloyalty.gunicorn",
            ],
            cwd=BASE_DIR,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(process, f"http://{env['BIND']}/healthz", log_path)
        yield process
    finally:
        stop(process)


def wait_until_up(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited with {process.returncode}:\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our loopback  # nosec B310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    sys.exit(f"gunicorn did not answer {url} within 60 s:\n{tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group (graceful), SIGKILL it if it has not gone after 15 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def lua_script(load: Load, *, run: str, ids_file: Path) -> str:
    headers = (
        "{"
        + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in load.headers.items())
        + "}"
    )
    return LUA % {
        "method": load.method,
        "path": load.path,
        "expect": load.expect,
        "headers": headers,
        "run": run,
        "ids_file": str(ids_file),
    }


def run_wrk(
    wrk: str,
    load: Load,
    *,
    server: int,
    port: int,
    seconds: int,
    args: argparse.Namespace,
    workdir: Path,
) -> Result:
    run = f"{load.name}{secrets.token_hex(4)}"
    script = workdir / f"{run}.lua"
    ids_file = workdir / f"{run}.ids"
    script.write_text(lua_script(load, run=run, ids_file=ids_file))
    meter = CpuMeter(server)
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            wrk,
            f"-t{args.wrk_threads}",
            f"-c{args.clients}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    cpu = meter.read(seconds)
    if completed.stderr.strip():
        print(completed.stderr.strip(), file=sys.stderr)
    line = next((x for x in completed.stdout.splitlines() if x.startswith("RESULT ")), None)
    if completed.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({completed.returncode}):\n{completed.stdout}")
    figures: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return Result(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        sent=figures["sent"],
        ok=figures["ok"],
        unexpected=figures["unexpected"],
        socket_errors=sum(v for k, v in figures["errors"].items() if k != "status"),
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        ids=[i for i in ids_file.read_text().splitlines() if i],
        cpu=cpu,
    )


def report(label: str, result: Result) -> None:
    print(
        f"{label:<28} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.1f} ms  "
        f"p90 {result.p90_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  max {result.max_ms:7.1f} ms  "
        f"errors {result.socket_errors}  unexpected status {result.unexpected}  "
        f"({result.requests} requests in {result.seconds:.1f} s)"
    )
    cpu = result.cpu
    print(
        f"{'':<28} CPU cores used: gunicorn {cpu.server:.2f}, its PostgreSQL backends "
        f"{cpu.database:.2f}, wrk {cpu.wrk:.2f}, other work on the machine {cpu.others:.2f} "
        f"(machine total {cpu.machine:.2f} of {os.cpu_count()}, waiting for disk {cpu.iowait:.2f})"
    )


def verify_members(list_id: int, runs: list[Result]) -> list[str]:
    """Every 201 is one distinct member; extra members only from requests cut off by wrk."""
    from django.db import connections

    from members.models import Member

    problems = []
    ids = [i for r in runs for i in r.ids]
    answered = sum(r.ok for r in runs)
    cut_off = sum(r.cut_off for r in runs)
    stored = Member.objects.filter(list_id=list_id).count()
    found = sum(
        Member.objects.filter(list_id=list_id, pk__in=ids[i : i + 5000]).count()
        for i in range(0, len(ids), 5000)
    )
    connections.close_all()
    if len(ids) != answered or len(set(ids)) != answered:
        problems.append(f"{answered} answers 201 but {len(set(ids))} distinct ids")
    if found != len(set(ids)):
        problems.append(f"{len(set(ids)) - found} members answered 201 are not in the list")
    extra = stored - found
    if not 0 <= extra <= cut_off:
        problems.append(
            f"the list holds {stored} members: {found} answered 201 and {extra} others "
            f"(at most {cut_off} requests were cut off in flight)"
        )
    print(
        f"members in the list: {stored} = {found} answered 201 + {extra} written for requests "
        f"cut off when wrk stopped (of {cut_off} cut off)"
    )
    return problems


def target_problems(api: Result) -> list[str]:
    problems = []
    if api.rps < TARGET_RPS:
        problems.append(f"{api.rps:.0f} req/s is below the target of {TARGET_RPS}")
    if api.p99_ms >= TARGET_P99_MS:
        problems.append(f"p99 {api.p99_ms:.0f} ms is not under {TARGET_P99_MS:.0f} ms")
    if api.socket_errors or api.unexpected:
        problems.append(f"{api.socket_errors} errors, {api.unexpected} answers other than 201")
    return problems


def gunicorn_settings() -> str:
    """The worker settings heyloyalty/gunicorn.py arrives at in this environment."""
    from heyloyalty import gunicorn as conf  # reads os.environ, which holds server_env()

    # What gunicorn uses when the file does not say (older versions of it did not).
    kind = getattr(conf, "worker_class", "gthread" if conf.threads > 1 else "sync")
    reuse_port = getattr(conf, "reuse_port", False)
    return f"{conf.workers} workers x {conf.threads} threads ({kind}, reuse_port={reuse_port})"


def loads(list_id: int, key: str, secret: str) -> tuple[Load, Load]:
    """The signed member create, and the /healthz baseline."""
    from heyloyalty.api.signature import sign

    # Signed once and reused for every request, exactly as the PHP client does (§2.3).
    signed = sign(key, secret, formatdate(time.time(), usegmt=True))
    api = Load(
        name="api",
        method="POST",
        path=f"/loyalty/v1/lists/{list_id}/members",
        expect=201,
        headers={**signed, "Content-Type": "application/json", "Host": "127.0.0.1"},
    )
    health = Load(
        name="healthz", method="GET", path="/healthz", expect=200, headers={"Host": "127.0.0.1"}
    )
    return api, health


def measure(
    wrk: str, api: Load, health: Load, *, env: dict[str, str], args: argparse.Namespace
) -> tuple[list[Result], Result | None]:
    """Warm-up and measured runs against one gunicorn: ([API warm-up, API], /healthz)."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        log = workdir / "gunicorn.log"
        with gunicorn(env, log) as server:
            port = int(env["BIND"].rpartition(":")[2])
            common: dict[str, Any] = {
                "server": server.pid,
                "port": port,
                "args": args,
                "workdir": workdir,
            }
            api_runs = [
                run_wrk(wrk, api, seconds=args.warmup, **common),
                run_wrk(wrk, api, seconds=args.seconds, **common),
            ]
            health_run = None
            if not args.no_baseline:
                run_wrk(wrk, health, seconds=args.warmup, **common)
                health_run = run_wrk(wrk, health, seconds=args.seconds, **common)
        if any(r.unexpected or r.socket_errors for r in api_runs):
            print(f"gunicorn's log ends:\n{tail(log)}", file=sys.stderr)
    return api_runs, health_run


def main() -> int:
    # A plain kill runs the finally blocks too: gunicorn stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = parse_args()
    wrk = require_wrk()
    lock = hold_run_lock()  # noqa: F841 - held until the process exits
    sys.path.insert(0, str(BASE_DIR))
    os.chdir(BASE_DIR)
    env = server_env(free_port(args.port), args)
    os.environ.update(env)

    print(f"database {DB_NAME}, Redis {REDIS_URL}, gunicorn on {env['BIND']}")
    recreate_database()
    try:
        list_id, key, secret = prepare_data()
        api, health = loads(list_id, key, secret)
        print(
            f"gunicorn: {gunicorn_settings()}; wrk: {args.wrk_threads} thread(s), "
            f"{args.clients} keep-alive connections, {args.warmup} s warm-up + "
            f"{args.seconds} s measured, on {os.cpu_count()} cores"
        )
        api_runs, health_run = measure(wrk, api, health, env=env, args=args)
        api_run = api_runs[-1]
        print()
        report("POST members (signed API)", api_run)
        if health_run is not None:
            report("GET /healthz (baseline)", health_run)
            print(f"API throughput is {api_run.rps / health_run.rps:.0%} of the baseline")
        problems = verify_members(list_id, api_runs)
    finally:
        if not args.keep:
            drop_database()
    misses = target_problems(api_run)
    for miss in misses:
        print(f"target missed: {miss}")
    if not misses:
        print(f"target met: >= {TARGET_RPS} req/s, p99 < {TARGET_P99_MS:.0f} ms, no errors")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
