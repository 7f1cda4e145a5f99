"""Kafka cluster ids: drawn as Kafka draws them, and formatted by the real kafka-storage tool."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from ops.stack import StackSettings
from ops.stack.kafka import KafkaCluster, random_cluster_id

# The first 6 bits of a UUID are its base64 text's first character: 62 (0xF8 >> 2) is "-".
LEADING_DASH = uuid.UUID(bytes=bytes([0xF8]) + bytes(range(1, 16)))


def test_ids_are_kafka_shaped_and_never_begin_with_a_dash():
    ids = {random_cluster_id() for _ in range(20_000)}
    assert len(ids) == 20_000
    for text in ids:
        assert len(text) == 22 and not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16
    # About 1 in 64 drawn UUIDs begins with "-" in base64; over 20,000 draws that is certain.
    assert base64.urlsafe_b64encode(LEADING_DASH.bytes).decode().startswith("-")


def test_reserved_and_dash_ids_are_drawn_again():
    zero, metadata_topic = uuid.UUID(int=0), uuid.UUID(int=1)
    fine = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff")
    draws = iter([LEADING_DASH, zero, metadata_topic, fine])
    assert random_cluster_id(lambda: next(draws)) == base64.urlsafe_b64encode(fine.bytes).decode().rstrip("=")


def _cluster(tmp_path: Path) -> KafkaCluster:
    settings = StackSettings.from_env()
    return KafkaCluster(
        settings.cache_dir, tmp_path / "kafka", settings.kafka_version, port=1, controller_port=2
    )


def _formatted_id(node_dir: Path) -> str:
    meta = (node_dir / "data" / "meta.properties").read_text()
    return dict(line.split("=", 1) for line in meta.splitlines() if "=" in line)["cluster.id"]


@pytest.mark.integration
@pytest.mark.parametrize(
    "cluster_id",
    [
        base64.urlsafe_b64encode(LEADING_DASH.bytes).decode().rstrip("="),  # a run dir from before the fix
        random_cluster_id(),
        random_cluster_id(),
    ],
)
def test_the_real_storage_tool_formats_the_id(local_stack, tmp_path, cluster_id):
    cluster = _cluster(tmp_path)
    node = cluster.nodes[0]
    cluster.format_storage(node, cluster_id)
    assert _formatted_id(node.directory) == cluster_id
