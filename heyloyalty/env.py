"""Reading configuration from the environment.

Every setting comes from an environment variable. A local ``.env`` file (made by
``make run``/``make test``, never committed) fills in what the environment does not
set, so that ``manage.py`` works on a developer's machine without exporting anything.
A secret may also come from ``<NAME>_FILE``, the path of a file holding it (Docker and
systemd credentials).
"""

from __future__ import annotations

import os
from pathlib import Path

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def load_env_file(path: Path) -> None:
    """Set the variables of a ``KEY=value`` file that the environment does not set."""
    if not path.is_file():
        return
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key.strip(), value)


def get(name: str, default: str = "") -> str:
    """The variable's value, else the contents of the file named by ``NAME_FILE``."""
    value = os.environ.get(name)
    if value is not None:
        return value
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text(encoding="utf-8").strip()
    return default


def get_bool(name: str, default: bool) -> bool:
    value = get(name, "").strip().lower()
    if name not in os.environ and not os.environ.get(f"{name}_FILE"):
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def get_int(name: str, default: int) -> int:
    value = get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {value!r}") from None


def get_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list; blanks dropped."""
    return [item.strip() for item in get(name, default).split(",") if item.strip()]


def parse_smtp_url(url: str) -> dict[str, object]:
    """Django's EMAIL_* settings from ``smtp://user:pass@host:port``.

    ``smtps://`` means implicit TLS (port 465 by default); ``?starttls=1`` upgrades a
    plain connection with STARTTLS. Credentials may be percent-encoded.
    """
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"}:
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://; got {url!r}")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[-1].lower() in TRUE
    ssl = parts.scheme == "smtps"
    return {
        "EMAIL_HOST": parts.hostname or "127.0.0.1",
        "EMAIL_PORT": parts.port or (465 if ssl else 587 if starttls else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_SSL": ssl,
        "EMAIL_USE_TLS": starttls and not ssl,
    }


def secret_key_problem(key: str) -> str | None:
    """Why a SECRET_KEY is unfit for production, or None when it is fine.

    The rule is Django's own (``check --deploy``, security.W009): at least 50
    characters, at least 5 different ones, not one of Django's generated insecure keys.
    """
    if not key:
        return "SECRET_KEY is not set"
    if len(key) < 50 or len(set(key)) < 5:
        return "SECRET_KEY is too weak (it needs at least 50 characters, 5 of them different)"
    if key.startswith("django-insecure-"):
        return "SECRET_KEY is one of Django's insecure development keys"
    return None
