"""What the dependency audit can honestly say from PyPI's project JSON (``make security``).

pip-audit asks ``/pypi/<name>/<version>/json`` (or OSV) about each pin. Where those do not
answer it skips the pin and still exits 0. This script asks what does answer,
``/pypi/<name>/json``, whose ``vulnerabilities`` list is that of the project's latest
release (``info.version``; PyPI's JSON API documentation: "the vulnerabilities array
provides a listing for any known vulnerabilities in the most recent release"). So, for
each ``name==version`` pin of the requirements files (and the files they include with
``-r``):

- the pin is the latest release: audited. Any known vulnerability (not withdrawn) fails;
  its id, aliases and fixed versions are printed;
- the pin is not the latest: reported as not audited here; it fails when every file of
  the pinned release is yanked;
- no answer for a project (network error, HTTP error, not a release there), or a
  requirement that is not pinned with ``==``: failed.

Exit status: 0 nothing known wrong with the audited pins, 1 something failed, 2 bad
usage, 3 no answer at all (offline: nothing was audited).

    .venv/bin/python deploy/audit_pins.py [--base-url URL] [--quiet] [FILE ...]

The base URL is ``https://pypi.org/pypi`` unless ``--base-url`` or AUDIT_PINS_BASE_URL
says otherwise (the tests point it at a local server). Stdlib and ``packaging`` only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
FILES = ("requirements.txt", "requirements-local.txt", "requirements-dev.txt")
BASE_URL = "https://pypi.org/pypi"
OK, FAILED, USAGE, OFFLINE = 0, 1, 2, 3
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?"  # name[extras]
    r"\s*==\s*(?P<version>[^\s;,]+)\s*(?:;.*)?$"  # ==version ; marker
)


@dataclass(frozen=True)
class Pin:
    name: str  # normalized (PEP 503)
    version: str
    where: str  # file:line


@dataclass
class Result:
    pin: Pin
    status: str  # audited, older, failed
    lines: list[str] = field(default_factory=list)


class Offline(Exception):
    """No answer from the index (as opposed to an answer that says something is wrong)."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(files: Iterable[Path]) -> tuple[list[Pin], list[str]]:
    """Every pin of ``files`` and of the files they include (``-r``), once per name and
    version; and the problems (a requirement that is not a pin, a missing file)."""
    pins: dict[tuple[str, str], Pin] = {}
    problems: list[str] = []
    seen: set[Path] = set()

    def read(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            problems.append(f"{path}: cannot be read ({error.strerror or error})")
            return
        for number, line in _logical_lines(text):
            where = f"{_shown(path)}:{number}"
            include = re.match(r"^(?:-r|--requirement)(?:\s+|=)(\S+)$", line)
            if include:
                read(path.parent / include.group(1))
                continue
            if line.startswith("-"):
                problems.append(f"{where}: option {line.split()[0]} is not understood here")
                continue
            match = PIN.match(line.split(" --hash", 1)[0].strip())
            if match is None:
                problems.append(f"{where}: {line!r} is not pinned with ==")
                continue
            pin = Pin(normalize(match["name"]), match["version"], where)
            pins.setdefault((pin.name, pin.version), pin)

    for path in files:
        read(path)
    return sorted(pins.values(), key=lambda p: (p.name, p.version)), problems


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Non-empty lines without comments, continuation lines (``\\``) joined."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            yield start, line


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def fetch(base_url: str, name: str, timeout: float) -> dict[str, Any]:
    """The project JSON; Offline when the index does not answer, ValueError when it
    answers with something else than the project's JSON."""
    url = f"{base_url.rstrip('/')}/{quote(name)}/json"
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked in main()
        url, headers={"Accept": "application/json", "User-Agent": "heyloyalty-audit-pins"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - scheme checked in main()  # nosec B310
            body = answer.read()
    except urllib.error.HTTPError as error:
        raise ValueError(f"HTTP {error.code} from {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise Offline(f"no answer from {url}: {reason}") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError(f"{url} did not answer JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
        raise ValueError(f"{url} did not answer a project's JSON")
    return data


def judge(pin: Pin, data: dict[str, Any]) -> Result:
    """What the project JSON says about ``pin``."""
    label = f"{pin.name}=={pin.version}"
    latest = str(data["info"].get("version") or "")
    releases = data.get("releases") or {}
    files = _release_files(releases, pin.version)
    if files is None:
        return Result(pin, "failed", [f"FAILED {label}: not a release of {pin.name} there"])
    try:
        is_latest = Version(pin.version) == Version(latest)
        newer = Version(pin.version) > Version(latest)
    except InvalidVersion:
        is_latest, newer = pin.version == latest, False
    yanked = bool(files) and all(f.get("yanked") for f in files)
    if is_latest and data["info"].get("yanked"):
        yanked = True
    lines = []
    if yanked:
        reasons = sorted({str(f.get("yanked_reason") or "") for f in files} - {""})
        why = f" ({'; '.join(reasons)})" if reasons else ""
        lines.append(f"FAILED {label}: the pinned release is yanked{why}")
    if not is_latest:
        note = " (the pin is newer: a pre-release?)" if newer else ""
        lines.insert(0, f"{label}: not audited here (pin {pin.version}, latest {latest}){note}")
        return Result(pin, "failed" if yanked else "older", lines)
    known = [v for v in data.get("vulnerabilities") or [] if not v.get("withdrawn")]
    for vulnerability in known:
        aliases = ", ".join(vulnerability.get("aliases") or []) or "no aliases"
        fixed = ", ".join(vulnerability.get("fixed_in") or []) or "no fixed version"
        link = f" {vulnerability['link']}" if vulnerability.get("link") else ""
        lines.append(
            f"FAILED {label}: {vulnerability.get('id', '?')} ({aliases}), fixed in: {fixed}{link}"
        )
    if known or yanked:
        return Result(pin, "failed", lines)
    return Result(pin, "audited", [f"{label}: the latest release, no known vulnerability"])


def _release_files(releases: dict[str, Any], version: str) -> list[dict[str, Any]] | None:
    if version in releases:
        return list(releases[version] or [])
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    for key, files in releases.items():
        try:
            if Version(key) == wanted:
                return list(files or [])
        except InvalidVersion:
            continue
    return None


def audit(
    pins: list[Pin], base_url: str, *, timeout: float = 15, workers: int = 6
) -> tuple[list[Result], int]:
    """A result per pin, and how many projects answered at all."""

    def one(pin: Pin) -> tuple[Result, bool]:
        try:
            data = fetch(base_url, pin.name, timeout)
        except (Offline, ValueError) as error:
            return Result(pin, "failed", [f"FAILED {pin.name}=={pin.version}: {error}"]), (
                isinstance(error, ValueError)
            )
        return judge(pin, data), True

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = list(pool.map(one, pins))
    return [result for result, _ in done], sum(answered for _, answered in done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Audit the pins of requirements files.")
    parser.add_argument(
        "files", nargs="*", type=Path, help="requirements files (default: the three of ROOT)"
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("AUDIT_PINS_BASE_URL") or BASE_URL,
        help=f"the JSON API's base (default {BASE_URL}, or AUDIT_PINS_BASE_URL)",
    )
    parser.add_argument("--timeout", type=float, default=15, help="seconds per request")
    parser.add_argument("--workers", type=int, default=6, help="requests in parallel")
    parser.add_argument("--list", action="store_true", help="print the pins read, ask nothing")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no line for an audited pin without problem"
    )
    args = parser.parse_args(argv)
    if urlsplit(args.base_url).scheme not in {"http", "https"}:
        parser.error("--base-url must start with http:// or https://")
    pins, problems = read_pins(args.files or [ROOT / name for name in FILES])
    if args.list:
        for pin in pins:
            print(f"{pin.name}=={pin.version}  ({pin.where})")
        for problem in problems:
            print(f"FAILED {problem}")
        return FAILED if problems else OK

    results, answered = audit(pins, args.base_url, timeout=args.timeout, workers=args.workers)
    if pins and not answered:
        for line in results[0].lines:
            print(line)
        print(
            f"OFFLINE: {args.base_url} did not answer for any of the {len(pins)} pins: "
            "nothing was audited. This is not a pass.",
            file=sys.stderr,
        )
        return OFFLINE
    order = {"failed": 0, "older": 1, "audited": 2}
    for result in sorted(results, key=lambda r: (order[r.status], r.pin.name)):
        if args.quiet and result.status == "audited":
            continue
        for line in result.lines:
            print(line)
    for problem in problems:
        print(f"FAILED {problem}")
    count = {status: sum(r.status == status for r in results) for status in order}
    failed = count["failed"] + len(problems)
    print(
        f"{len(pins) + len(problems)} pins: {count['audited']} audited (no known "
        f"vulnerability), {count['older']} older than latest (not audited here), "
        f"{failed} failed"
    )
    return FAILED if failed else OK


if __name__ == "__main__":
    sys.exit(main())
