"""The local stack's lifecycle on its own ports and run directory: up twice, status, down, clear errors."""

from __future__ import annotations

import dataclasses
import random
import socket
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from ops.runtime.config import Env
from ops.runtime.exceptions import ConfigError
from ops.runtime.kafka import DurableProducer, admin_client
from ops.stack import LocalStack, StackSettings
from ops.stack.exceptions import StackError
from ops.stack.process import _state, port_in_use, require_tool


def _free_base(count: int) -> int:
    """A port base with ``count`` consecutive free ports on loopback."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000, 2)
        if not any(port_in_use(p) for p in range(base, base + count)):
            return base
    raise RuntimeError("no free port range found")


def _isolated(tmp_path: Path, brokers: int = 1) -> StackSettings:
    base = _free_base(2 * brokers + 1)
    return dataclasses.replace(
        StackSettings.from_env(Env({})),
        run_dir=tmp_path / "run",
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_brokers=brokers,
        mongo_port=base + 2 * brokers,
        kafka_heap="256m",
    )


def _gone(pids: tuple[int, ...]) -> bool:
    return all(_state(pid) in (None, "Z") for pid in pids)


@pytest.mark.integration
@pytest.mark.slow
def test_up_twice_is_harmless_and_down_leaves_nothing(local_stack, tmp_path):
    settings = _isolated(tmp_path)
    stack = LocalStack(settings)
    try:
        assert sorted(stack.up()) == ["ferretdb", "kafka"]
        assert stack.up() == []  # second start: everything already runs, nothing restarted
        status = {c.name.split()[0]: c for c in stack.status()}
        assert status["kafka"].state == "running" and status["ferretdb"].state == "running"
        assert status["kafka"].address == f"127.0.0.1:{settings.kafka_port}"
        pids = status["kafka"].pids + status["ferretdb"].pids
        assert len(pids) == 2
        assert (settings.run_dir / "kafka" / "node-1" / "kafka-1.log").exists()
        assert (settings.run_dir / "ferretdb" / "ferretdb.log").exists()
    finally:
        stopped = stack.down()
    assert stopped == 2
    assert _gone(pids)
    assert not port_in_use(settings.kafka_port) and not port_in_use(settings.mongo_port)
    assert stack.down() == 0  # nothing left to stop
    assert all(c.state == "stopped" for c in stack.status())


@pytest.mark.integration
@pytest.mark.slow
def test_three_broker_cluster_replicates_with_min_insync_two(local_stack, tmp_path):
    settings = dataclasses.replace(_isolated(tmp_path, brokers=3), external_mongodb="mongodb://unused")
    stack = LocalStack(settings)
    try:
        assert stack.up() == ["kafka"]
        bootstrap = stack.bootstrap_servers
        assert len(bootstrap.split(",")) == 3
        admin = admin_client(bootstrap)
        assert len(admin.list_topics(timeout=10).brokers) == 3
        topic = "replicated"
        admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
        metadata = admin.list_topics(topic, timeout=10).topics[topic]
        assert all(len(p.replicas) == 3 for p in metadata.partitions.values())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metadata = admin.list_topics(topic, timeout=10).topics[topic]
            if all(len(p.isrs) == 3 for p in metadata.partitions.values()):
                break
            time.sleep(0.2)
        producer = DurableProducer(bootstrap)
        message = producer.produce_sync(topic, b"durable", key=b"k")
        assert message.error() is None
        producer.close()
    finally:
        assert stack.down() == 3


def test_port_in_use_is_reported_in_one_line(tmp_path):
    settings = _isolated(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", settings.mongo_port))
        blocker.listen()
        stack = LocalStack(dataclasses.replace(settings, external_kafka="127.0.0.1:1"))
        with pytest.raises(
            StackError, match=rf"port {settings.mongo_port} is already in use.*STOREE_MONGO_PORT"
        ):
            stack.up()


def test_missing_tool_names_itself(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="'go' was not found on PATH; it is needed to build FerretDB"):
        require_tool("go", "build FerretDB, the local MongoDB-wire server (install the Go toolchain)")


def test_external_servers_are_used_and_never_started(tmp_path):
    env = Env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
            "MONGODB_URL": "mongodb://u:secret@db:27017/",
            "STOREE_RUN_DIR": str(tmp_path),
        }
    )
    stack = LocalStack(StackSettings.from_env(env))
    assert stack.kafka is None and stack.mongo is None
    assert stack.up() == [] and stack.down() == 0
    assert stack.bootstrap_servers == "kafka.example:9092"
    states = {c.name: (c.state, c.address) for c in stack.status()}
    assert states == {
        "kafka": ("external", "kafka.example:9092"),
        "mongodb": ("external", "mongodb://u:****@db:27017/"),
    }


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"STOREE_KAFKA_PORT": "abc"}, "STOREE_KAFKA_PORT must be an integer, got 'abc'"),
        ({"STOREE_MONGO_PORT": "70000"}, "STOREE_MONGO_PORT must be at most 65535"),
        ({"STOREE_KAFKA_BROKERS": "2"}, "STOREE_KAFKA_BROKERS must be one of 1, 3"),
    ],
)
def test_malformed_settings_name_the_variable(variables, message):
    with pytest.raises(ConfigError, match=message):
        StackSettings.from_env(Env(variables))
