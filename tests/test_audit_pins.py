"""deploy/audit_pins.py against a real local HTTP server serving PyPI-style project JSON:
a vulnerable pin that is the latest release fails, a clean one passes, an older pin is
reported as not audited (and fails only when yanked), no answer at all is its own exit
status. Nothing of the script is replaced: it is loaded from its file and run."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "audit_pins.py"

spec = importlib.util.spec_from_file_location("audit_pins", SCRIPT)
assert spec is not None and spec.loader is not None
audit_pins = importlib.util.module_from_spec(spec)
sys.modules["audit_pins"] = audit_pins  # dataclasses look their module up
spec.loader.exec_module(audit_pins)


def files(version: str, *, yanked: bool = False, reason: str | None = None) -> list[dict]:
    return [
        {
            "filename": f"pkg-{version}{suffix}",
            "packagetype": kind,
            "yanked": yanked,
            "yanked_reason": reason,
        }
        for suffix, kind in (("-py3-none-any.whl", "bdist_wheel"), (".tar.gz", "sdist"))
    ]


def project(name: str, latest: str, versions: dict[str, list[dict]], vulns=()) -> dict:
    """What /pypi/<name>/json answers: ``vulnerabilities`` are those of ``latest``."""
    return {
        "info": {"name": name, "version": latest, "yanked": False, "yanked_reason": None},
        "last_serial": 1,
        "releases": versions,
        "urls": versions.get(latest, []),
        "vulnerabilities": list(vulns),
    }


def vulnerability(id: str, *, withdrawn: str | None = None) -> dict[str, Any]:
    return {
        "id": id,
        "aliases": ["CVE-2099-0001", "GHSA-aaaa-bbbb-cccc"],
        "summary": "remote code execution",
        "details": "…",
        "fixed_in": ["2.0.1", "1.9.9"],
        "link": f"https://osv.dev/vulnerability/{id}",
        "source": "osv",
        "withdrawn": withdrawn,
    }


PROJECTS = {
    "vulnpkg": project(
        "vulnpkg",
        "2.0",
        {"1.9": files("1.9"), "2.0": files("2.0")},
        [vulnerability("PYSEC-2099-1")],
    ),
    "cleanpkg": project("cleanpkg", "1.4.0", {"1.3": files("1.3"), "1.4.0": files("1.4.0")}),
    # The vulnerability is that of 3.0, the latest; nothing is known here about 2.5.
    "oldpkg": project(
        "oldpkg", "3.0", {"2.5": files("2.5"), "3.0": files("3.0")}, [vulnerability("PYSEC-1")]
    ),
    "yankedpkg": project(
        "yankedpkg",
        "1.1",
        {"1.0": files("1.0", yanked=True, reason="broken wheel"), "1.1": files("1.1")},
    ),
    "withdrawnpkg": project(
        "withdrawnpkg",
        "5.0",
        {"5.0": files("5.0")},
        [vulnerability("PYSEC-2099-2", withdrawn="2099-01-02T00:00:00Z")],
    ),
    "foo-bar-baz": project("Foo_Bar.baz", "0.3", {"0.3": files("0.3")}),
}


@contextlib.contextmanager
def index(projects: dict[str, dict]) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server answering /pypi/<name>/json like PyPI; 404 for other names."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            parts = self.path.strip("/").split("/")
            data = projects.get(parts[1]) if len(parts) == 3 and parts[2] == "json" else None
            if data is None:
                self.send_error(404)
                return
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pypi", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pypi() -> Iterator[tuple[str, list[str]]]:
    with index(PROJECTS) as served:
        yield served


def requirements(tmp_path: Path, *lines: str, name: str = "requirements.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys, *args: Any) -> tuple[int, list[str]]:
    status = audit_pins.main([str(a) for a in args])
    return status, capsys.readouterr().out.splitlines()


def test_a_vulnerable_pin_that_is_the_latest_release_fails(pypi, tmp_path, capsys):
    url, _ = pypi
    status, out = run(capsys, "--base-url", url, requirements(tmp_path, "vulnpkg==2.0"))

    assert status == 1
    assert out == [
        "FAILED vulnpkg==2.0: PYSEC-2099-1 (CVE-2099-0001, GHSA-aaaa-bbbb-cccc), "
        "fixed in: 2.0.1, 1.9.9 https://osv.dev/vulnerability/PYSEC-2099-1",
        "1 pins: 0 audited (no known vulnerability), 0 older than latest (not audited here), "
        "1 failed",
    ]


def test_a_clean_latest_pin_passes(pypi, tmp_path, capsys):
    url, _ = pypi
    # 1.4 is 1.4.0, and a withdrawn vulnerability is no vulnerability.
    path = requirements(tmp_path, "cleanpkg==1.4", "withdrawnpkg==5.0")

    status, out = run(capsys, "--base-url", url, path)

    assert status == 0
    assert out[-1] == (
        "2 pins: 2 audited (no known vulnerability), 0 older than latest (not audited here), "
        "0 failed"
    )
    assert "cleanpkg==1.4: the latest release, no known vulnerability" in out


def test_an_older_pin_is_reported_not_audited_and_does_not_fail(pypi, tmp_path, capsys):
    url, _ = pypi
    status, out = run(capsys, "--base-url", url, requirements(tmp_path, "oldpkg==2.5"))

    assert status == 0
    assert out == [
        "oldpkg==2.5: not audited here (pin 2.5, latest 3.0)",
        "1 pins: 0 audited (no known vulnerability), 1 older than latest (not audited here), "
        "0 failed",
    ]


def test_an_older_pin_that_was_yanked_fails(pypi, tmp_path, capsys):
    url, _ = pypi
    status, out = run(capsys, "--base-url", url, requirements(tmp_path, "yankedpkg==1.0"))

    assert status == 1
    assert out[:2] == [
        "yankedpkg==1.0: not audited here (pin 1.0, latest 1.1)",
        "FAILED yankedpkg==1.0: the pinned release is yanked (broken wheel)",
    ]
    assert out[-1].endswith("0 older than latest (not audited here), 1 failed")


def test_unknown_projects_releases_and_unpinned_requirements_fail(pypi, tmp_path, capsys):
    url, _ = pypi
    path = requirements(tmp_path, "nosuchpkg==1.0", "cleanpkg==9.9", "oldpkg>=2")

    status, out = run(capsys, "--base-url", url, path)

    assert status == 1
    assert f"FAILED nosuchpkg==1.0: HTTP 404 from {url}/nosuchpkg/json" in out
    assert "FAILED cleanpkg==9.9: not a release of cleanpkg there" in out
    assert any("'oldpkg>=2' is not pinned with ==" in line for line in out)
    assert out[-1].endswith("3 failed")


def test_included_files_are_read_once_with_extras_markers_and_odd_names(pypi, tmp_path, capsys):
    url, asked = pypi
    requirements(tmp_path, "# base", "cleanpkg==1.4.0  # inline", name="base.txt")
    requirements(tmp_path, "-r base.txt", "oldpkg[extra]==2.5 ; python_version >= '3'", name="b")
    path = requirements(
        tmp_path, "-r b", "-r base.txt", "", "Foo_Bar.baz==0.3 \\", "    --hash=sha256:00"
    )

    status, out = run(capsys, "--base-url", url, path)

    assert status == 0, out
    assert out[-1].startswith("3 pins: 2 audited")
    assert sorted(asked) == ["/pypi/cleanpkg/json", "/pypi/foo-bar-baz/json", "/pypi/oldpkg/json"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_answer_at_all_is_its_own_exit_status_not_a_pass(tmp_path):
    """Run as `make security` runs it, the base URL from the environment."""
    path = requirements(tmp_path, "cleanpkg==1.4", "oldpkg==2.5")
    env = {**os.environ, "AUDIT_PINS_BASE_URL": f"http://127.0.0.1:{closed_port()}/pypi"}

    done = subprocess.run(
        [sys.executable, SCRIPT, "--timeout", "5", path],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert done.returncode == 3, done
    assert "did not answer for any of the 2 pins: nothing was audited" in done.stderr


def test_the_exit_status_of_the_script_itself(pypi, tmp_path):
    url, _ = pypi
    for line, expected in (("vulnpkg==2.0", 1), ("cleanpkg==1.4.0", 0)):
        done = subprocess.run(
            [sys.executable, SCRIPT, "--base-url", url, requirements(tmp_path, line)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == expected, done


def test_every_line_of_the_three_requirements_files_is_a_pin_it_audits(capsys):
    """All three files, the nested ones included (pip-audit -r reads only the file
    given), and nothing the script does not understand."""
    status, out = run(capsys, "--list")

    assert status == 0, [line for line in out if line.startswith("FAILED")]
    pinned = {
        audit_pins.normalize(line.split("==")[0].split("[")[0])
        for name in audit_pins.FILES
        for line in (ROOT / name).read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    listed = {line.split("==")[0] for line in out}
    assert listed == pinned
    assert {"django", "aiosmtpd", "pip-audit"} <= listed  # one of each file
