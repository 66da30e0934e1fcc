"""The tracking buffer's settings come from the environment like the others, and are
documented where the others are (README, "Configuration")."""

import os
import re
import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
TRACKING = re.compile(r"\bTRACKING_[A-Z_]+\b")


def settings_value(name: str, environ: dict[str, str]) -> str:
    """``settings.<name>`` in a fresh process started with ``environ``."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "DATABASE_URL"}}
    code = (
        f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **keep,
            "ENV_FILE": "/dev/null",
            "DEBUG": "1",
            "SECRET_KEY": "x" * 10 + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0-_zz",
            "DJANGO_SETTINGS_MODULE": "heyloyalty.settings",
            **environ,
        },
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_buffer_key_comes_from_the_environment():
    assert settings_value("TRACKING_BUFFER_KEY", {}) == "hl:tracking"
    assert settings_value("TRACKING_BUFFER_KEY", {"TRACKING_BUFFER_KEY": "site2:tracking"}) == (
        "site2:tracking"
    )


def test_the_buffer_key_is_the_one_the_tracking_endpoints_use(settings):
    from campaigns import tracking

    settings.TRACKING_BUFFER_KEY = "elsewhere:tracking"

    assert tracking.buffer_key() == "elsewhere:tracking"


def test_every_tracking_variable_read_from_the_environment_is_in_the_readme():
    read = set()
    for module in ("heyloyalty/settings.py", "heyloyalty/schedule.py"):
        source = (BASE / module).read_text()
        read |= set(re.findall(r'env\.get(?:_int|_bool|_list)?\("(TRACKING_[A-Z_]+)"', source))
    assert {"TRACKING_BUFFER_KEY", "TRACKING_FLUSH_SECONDS"} <= read
    readme = (BASE / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Architecture")]
    documented = {name for line in table.splitlines() for name in TRACKING.findall(line)}
    assert read <= documented
