"""What the end-to-end benchmarks share: their own database, processes stopped whatever
happens, the memory and CPU they used, and the quiet of the machine they ran on.

The machine is shared, so every figure is printed with the CPU seconds that our processes
and everyone else's spent meanwhile: a time is worth as much as the quiet it was measured in.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil  # type: ignore[import-untyped]
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# The server the benchmarks make their databases on (BENCH_PG: another one, e.g. a server
# set up for restores, as docs/benchmarks.md's "Backups" compares).
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
SAMPLE_SECONDS = 0.2
CHILDREN_EVERY = 5  # samples; a child that comes or goes meanwhile is found then


# -------------------------------------------------------------------------- the database


def recreate_database(name: str) -> None:
    """Ours alone: dropped and made again so every run starts from the same state."""
    connection = psycopg2.connect(f"{PG}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def drop_database(name: str) -> None:
    connection = psycopg2.connect(f"{PG}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


def checkpoint(dsn: str) -> None:
    """Flush dirty pages first, so the timed phase does not pay for the set-up's writes."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    connection.close()


def manage(env: dict[str, str], *command: str) -> None:
    python = str(VENV_BIN / "python")
    subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True)  # noqa: S603


def migrated_database(name: str, env: dict[str, str], *, keep: bool, stack: ExitStack) -> None:
    """Our own database, made anew and migrated; dropped when `stack` closes unless kept."""
    recreate_database(name)
    if not keep:
        stack.callback(drop_database, name)
    manage(env, "migrate", "--no-input", "-v", "0")


# ------------------------------------------------------------------------- the processes


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def process(
    name: str, command: list[str], env: dict[str, str], logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process in its own group and stop that group (and only it) on the way out."""
    log = (logs / f"{name}.log").open("wb")
    child = subprocess.Popen(  # noqa: S603 - our own argv, no shell
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield child
    finally:
        stop(child)
        log.close()


def stop(child: subprocess.Popen[bytes]) -> None:
    """TERM the group we made; KILL it if it lingers (a worker mid-task would wait)."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        if child.poll() is not None:
            return
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


def wait_for(
    check: Callable[[], bool], what: str, timeout: float, child: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {child.returncode}")
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")


def interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so every `finally` runs on a plain `kill` too


def print_logs(logs: Path) -> None:
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-25:]
        print(f"\n--- last lines of {log.name}", *tail, sep="\n", file=sys.stderr)


def stepper() -> Callable[[str], None]:
    """Progress lines with the time since start, so a slow set-up step shows itself."""
    started = time.perf_counter()

    def step(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    return step


def load_note() -> str:
    """The load averages (1, 5, 15 min) and how busy the cores are right now."""
    one, five, fifteen = os.getloadavg()
    busy = psutil.cpu_percent(interval=1.0)
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}, CPU {busy:.0f}% busy over 1 s"


# ------------------------------------------------------------------- memory and CPU


@dataclass(frozen=True)
class RssSample:
    at: float  # time.perf_counter()
    total: int  # bytes, the process and its children
    largest: int  # bytes, the largest single process among them
    processes: int
    progress: int  # what the caller's `progress` said at that moment


class RssSampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled in the background.

    With `progress` (say, messages sent so far) every sample is also kept with it, so the
    memory can be shown along the way rather than only at its peak.
    """

    def __init__(self, pid: int, progress: Callable[[], int] | None = None) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.last = 0
        self.peak_process = 0  # the largest one process ever was
        self.progress = progress
        self.samples: list[RssSample] = []
        self.done = threading.Event()

    def run(self) -> None:
        members: list[psutil.Process] = []
        for n in itertools.count():
            if self.done.wait(SAMPLE_SECONDS):
                return
            try:
                if n % CHILDREN_EVERY == 0 or not members:
                    # Finding the children reads every process on the machine: not each time.
                    members = [self.process, *self.process.children(recursive=True)]
                sizes = [p.memory_info().rss for p in members]
            except psutil.Error:
                members = []
                continue  # a child came or went between the two calls
            self.last = sum(sizes)
            self.peak = max(self.peak, self.last)
            self.peak_process = max(self.peak_process, *sizes)
            if self.progress is not None:
                sample = RssSample(
                    time.perf_counter(), self.last, max(sizes), len(sizes), self.progress()
                )
                self.samples.append(sample)

    def reset(self) -> None:
        self.peak = self.last
        self.peak_process = 0
        self.samples = []


class CpuAccount(threading.Thread):
    """CPU seconds spent during a run: by the benchmark's processes, and by everyone else.

    The machine is shared, so a time is worth as much as the quiet it was measured in; our
    own CPU seconds stay comparable between runs when the quiet does not. Others are all
    busy time less ours: each root process given by name (with its children), this script
    (with its children), and PostgreSQL's own processes and backends on our database. A
    backend may end before the run does (a worker closes its connection after a task), so
    we look every second and keep what each process had used when last seen.
    """

    def __init__(self, dsn: str, database: str, **roots: int) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.postmaster = _postmaster(dsn)
        self.roots = {**roots, "bench": os.getpid()}
        self.busy = 0.0
        self.before: dict[int, tuple[str, float]] = {}
        self.seen: dict[int, tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self._look()

    def begin(self) -> None:
        with self.lock:
            self.busy, self.before = _busy_seconds(), self._ours()
            self.seen = dict(self.before)

    def end(self) -> dict[str, float]:
        self._look()
        busy = _busy_seconds() - self.busy
        spent = dict.fromkeys([*self.roots, "postgres"], 0.0)
        with self.lock:
            for pid, (kind, cpu) in self.seen.items():
                spent[kind] += cpu - self.before.get(pid, (kind, 0.0))[1]
        spent["others"] = max(0.0, busy - sum(spent.values()))
        return spent

    def _look(self) -> None:
        ours = self._ours()
        with self.lock:
            self.seen.update(ours)

    def _ours(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter(["pid", "ppid", "cmdline", "cpu_times"]):
            kind = self._kind(proc.info["pid"], proc.info["ppid"], proc.info["cmdline"] or [])
            times = proc.info["cpu_times"]
            if kind and times is not None:
                found[proc.info["pid"]] = (kind, times.user + times.system)
        return found

    def _kind(self, pid: int, ppid: int, cmdline: list[str]) -> str | None:
        for kind, root in self.roots.items():
            if root in (pid, ppid):
                return kind
        title = " ".join(cmdline)
        if ppid != self.postmaster:
            return None
        session = "(" in title or "[local]" in title or "autovacuum worker" in title
        return "postgres" if not session or f" {self.database} " in f"{title} " else None


def _postmaster(dsn: str) -> int:
    """The pid of the PostgreSQL server we use (the machine may run others)."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (backend,) = cursor.fetchone() or (0,)
        return int(psutil.Process(backend).ppid())  # while the backend lives
    finally:
        connection.close()


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)
