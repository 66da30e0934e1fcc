"""docker-compose.yml cannot run here; keep it honest by reading it."""

import shlex
from pathlib import Path

import yaml

BASE = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, list[str]]:
    lines = (BASE / "Procfile").read_text().splitlines()
    return {name.strip(): shlex.split(cmd) for name, _, cmd in (ln.partition(":") for ln in lines)}


def test_compose_runs_the_same_commands_as_make_run():
    services = yaml.safe_load((BASE / "docker-compose.yml").read_text())["services"]
    for name, command in procfile().items():
        assert services[name]["command"] == command, name


def test_compose_has_the_production_services_and_volumes():
    compose = yaml.safe_load((BASE / "docker-compose.yml").read_text())
    assert {"postgres", "redis", "web", "worker", "beat", "caddy"} <= set(compose["services"])
    assert {"pgdata", "backups"} <= set(compose["volumes"])
    assert compose["services"]["web"]["environment"]["DEBUG"] == "0"
    assert "443:443" in compose["services"]["caddy"]["ports"]
