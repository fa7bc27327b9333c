"""The Dockerfile, .dockerignore and compose.yaml, read as files (no Docker engine needed)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from cli.main import build_parser
from libs.infra.settings import Settings
from tests.deploy.conftest import REPO

SETTINGS_ENV = {f"HOOKPOST_{name.upper()}" for name in Settings.model_fields}


def dockerfile_stages() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """(global ARG defaults, [[(INSTRUCTION, arguments), …] per stage]), continuations joined."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if not stages:
            if instruction == "ARG" and "=" in rest:
                name, _, default = rest.partition("=")
                args[name.strip()] = default.strip()
            continue
        stages[-1].append((instruction, rest.strip()))
    return args, stages


def test_dockerfile_is_multi_stage_slim_non_root_with_the_hookpost_entrypoint() -> None:
    args, stages = dockerfile_stages()
    assert len(stages) >= 2, "builder and runtime stages"
    runtime = stages[-1]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], runtime[0][1]).split()[0]
    assert base == "python:3.11-slim"
    copies = [rest for instruction, rest in runtime if instruction == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the runtime gets the venv only"
    users = [rest for instruction, rest in runtime if instruction == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), "a numeric non-root user"
    entrypoints = [rest for instruction, rest in runtime if instruction == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["hookpost"]]
    builder_runs = " ".join(rest for instruction, rest in stages[0] if instruction == "RUN")
    assert "pip install ." in builder_runs


def test_dockerignore_keeps_the_context_to_the_source() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "ignore everything, then allow what the image needs"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"pyproject.toml", "cli", "libs", "services"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))


def test_compose_infrastructure_services_keep_their_names_and_local_ports(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    # scripts/ensure-infra.sh runs `docker compose up -d rabbitmq` and `… postgres`.
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.13-management")
    assert "127.0.0.1:5672:5672" in services["rabbitmq"]["ports"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "127.0.0.1:5432:5432" in services["postgres"]["ports"]
    # The password of the default HOOKPOST_DATABASE_URL, which `make test` uses.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "postgres"
    assert ":postgres@" in Settings.model_fields["database_url"].default
    for name in ("rabbitmq", "postgres"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
        published = [p.split(":")[0] for p in services[name]["ports"]]
        assert set(published) == {"127.0.0.1"}, f"{name} must only listen on localhost"


def test_compose_runs_every_service_through_the_hookpost_script(compose: dict[str, Any]) -> None:
    services = compose["services"]
    commands = {
        name: build_parser().parse_args(service["command"]).command
        for name, service in services.items()
        if service.get("image") == "hookpost:dev"
    }
    assert commands == {
        "migrate": "migrate",
        "api": "api",
        "dispatcher": "dispatcher",
        "sender": "sender",
    }
    assert services["sender"]["deploy"]["replicas"] == 2
    assert "127.0.0.1:8000:8000" in services["api"]["ports"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "dispatcher", "sender"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["HOOKPOST_ENV"] == "dev"
        assert set(service["environment"]) <= SETTINGS_ENV
        assert int(service["stop_grace_period"].removesuffix("s")) > 30 + 35
