"""The storee command settles the servers once, before a command runs; services never look for them."""

from __future__ import annotations

import os

import pytest

from gateway.settings import GatewaySettings
from gpu_consumers.settings import GpuConsumerSettings
from ops import cli
from ops.runtime.config import Env
from ops.runtime.exceptions import ConfigError
from streams.settings import StreamSettings


def test_unset_servers_are_the_local_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stack's own view of the process environment: no servers named there either.
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.setenv("STOREE_KAFKA_PORT", "19092")
    monkeypatch.setenv("STOREE_MONGO_PORT", "27777")
    environ = {"KAFKA_BOOTSTRAP_SERVERS": "  ", "OTHER": "x"}
    cli.resolve_servers(environ)
    assert environ["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert environ["MONGODB_URL"].startswith("mongodb://127.0.0.1:27777")


def test_named_servers_are_kept() -> None:
    environ = {"KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092", "MONGODB_URL": "mongodb://db.example/"}
    cli.resolve_servers(environ)
    assert environ == {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
        "MONGODB_URL": "mongodb://db.example/",
    }


@pytest.mark.parametrize("argv", [["stack", "status"], ["demo"], ["up"]])
def test_commands_that_manage_the_stack_are_left_to_it(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.command in cli.MANAGE_THE_STACK


def test_a_service_command_runs_with_the_servers_filled_in(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str | None] = {}
    # Blank counts as unset; setenv (unlike delenv of an absent variable) puts the environment back
    # after the test, so the addresses main() fills in do not leak into later tests.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    monkeypatch.setenv("MONGODB_URL", "")
    monkeypatch.setenv("STOREE_KAFKA_PORT", "19092")
    parser = cli.build_parser()
    args = parser.parse_args(["topics", "list"])
    args.handler = lambda _: seen.update(kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS")) or 0
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(args))
    assert cli.main(["topics", "list"]) == 0
    assert seen["kafka"] == "127.0.0.1:19092"


class _Fixed:
    def __init__(self, args: object) -> None:
        self.args = args

    def parse_args(self, argv: object) -> object:
        return self.args


@pytest.mark.parametrize(
    "build",
    [
        lambda env: GatewaySettings.from_env(env),
        lambda env: StreamSettings.from_env(env),
        lambda env: GpuConsumerSettings.from_env(env),
    ],
    ids=["gateway", "streams", "gpu_consumers"],
)
def test_a_service_alone_names_the_missing_server(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS is not set"):
        build(Env({"MONGODB_URL": "mongodb://db.example/", "STOREE_HOME": "/tmp/storee-cli-test"}))


def test_the_gateway_alone_names_a_missing_mongodb() -> None:
    with pytest.raises(ConfigError, match="MONGODB_URL is not set"):
        GatewaySettings.from_env(Env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}))
