"""docker-compose.yml cannot run here (no Docker engine), so its structure is checked instead.

The checks follow the Compose specification where a mistake would only show at ``docker compose up``:
known top-level and service keys, an image or build for every service, well-formed ports, dependencies
that exist, app services pointed at the Kafka and MongoDB services through the same variables as the
local run, and ``storee`` subcommands that exist (or are planned by an open issue).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ops.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]

TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
SERVICE_KEYS = {
    "build",
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "profiles",
    "networks",
    "working_dir",
    "user",
    "labels",
    "logging",
    "stop_grace_period",
    "stop_signal",
    "ulimits",
    "shm_size",
    "init",
    "container_name",
}
APP_SERVICES = {"topics", "gateway", "streams", "gpu-consumer"}
# Subcommands that compose runs but a later open issue still has to add to the CLI.
PLANNED_COMMANDS = {"streams"}
# Every variable compose sets for our services must be one the settings objects read.
KNOWN_VARIABLES = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "MONGODB_DATABASE",
    "TOPIC_PREFIX",
    "OUTPUT_DIR",
    "LOG_LEVEL",
    "BATCH_SIZE",
    "BATCH_TIMEOUT",
    "TASK_TTL",
}
PORT = re.compile(r"^(\d{1,5}:)?\d{1,5}(/(tcp|udp))?$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_top_level_structure(compose):
    unknown = {key for key in compose if key not in TOP_LEVEL and not key.startswith("x-")}
    assert not unknown, f"unknown top-level keys {unknown}"
    assert {"kafka", "mongodb", *APP_SERVICES} <= set(compose["services"])


def test_services_are_well_formed(compose):
    services = compose["services"]
    for name, service in services.items():
        assert not set(service) - SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        assert "image" in service or "build" in service, f"{name}: needs an image or a build"
        for port in service.get("ports", []):
            assert PORT.match(str(port)), f"{name}: malformed port {port!r}"
        depends = service.get("depends_on", {})
        for dependency, condition in (
            depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)
        ):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert condition.get("condition", "service_started") in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith((".", "/")) or source in (compose.get("volumes") or {}), (
                f"{name}: {volume}"
            )


def test_apps_reach_kafka_and_mongodb_through_the_shared_variables(compose):
    services = compose["services"]
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert set(env) <= KNOWN_VARIABLES, f"{name}: unknown variables {set(env) - KNOWN_VARIABLES}"
        assert f"PLAINTEXT://{env['KAFKA_BOOTSTRAP_SERVERS']}" in advertised
        assert env["MONGODB_URL"].startswith("mongodb://mongodb:27017")
        assert all(isinstance(value, str) for value in env.values()), f"{name}: quote every value"


def test_commands_are_storee_subcommands(compose):
    parser = build_parser()
    existing = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 - the parser's own table
    for name in APP_SERVICES:
        command = compose["services"][name]["command"]
        assert command[0] in existing | PLANNED_COMMANDS, f"{name}: 'storee {command[0]}' does not exist"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["storee"]' in dockerfile
