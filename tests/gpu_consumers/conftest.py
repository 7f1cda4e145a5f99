"""Fixtures for the GPU consumer tests: the tiny model (built once per run) and consumer processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from ops.runtime.kafka import admin_client
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import POOL, ConsumerProcesses


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Wan pipeline saved once per test run, loaded by every test through ``from_pretrained``."""
    from gpu_consumers.tiny_model import make_tiny_wan

    return make_tiny_wan(tmp_path_factory.mktemp("models") / "tiny-wan")


@pytest.fixture
def admin(kafka_bootstrap: str) -> AdminClient:
    return admin_client(kafka_bootstrap)


@pytest.fixture
def catalog(provision_catalog, topic_prefix: str) -> TopicCatalog:
    """This test's topics for the pool ``tiny``, with few partitions so rebalances stay quick."""
    return provision_catalog(
        TopicCatalog.build(
            prefix=topic_prefix,
            pools=(POOL,),
            partitions={f"batches.{POOL}.premium": 4, f"batches.{POOL}.free": 4, "task.events": 3},
        )
    )


@pytest.fixture
def consumers(
    kafka_bootstrap: str, topic_prefix: str, tiny_model_dir: Path, tmp_path: Path, catalog: TopicCatalog
) -> Iterator[ConsumerProcesses]:
    """Starts ``storee gpu-consumer`` processes for this test; kills whatever is left afterwards."""
    processes = ConsumerProcesses(kafka_bootstrap, topic_prefix, tiny_model_dir, tmp_path)
    try:
        yield processes
    finally:
        processes.kill_all()
