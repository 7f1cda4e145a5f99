"""Gateway fixtures: an app per test on its own topics, database and output directory, and accounts in it."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError
from starlette.testclient import TestClient

from gateway.accounts import NewAccount
from gateway.app import create_app
from gateway.settings import GatewaySettings
from ops.runtime.config import Secret
from ops.runtime.kafka import make_consumer, raise_for_error
from schemas.codec import Codec
from schemas.events import Event
from schemas.records import Tier
from schemas.topics import TopicCatalog

CODEC = Codec()


@pytest.fixture
def catalog(provision_catalog, topic_prefix: str) -> TopicCatalog:
    """The catalog's topics under this test's prefix (small partition counts: tests need no parallelism)."""
    names = (
        "stories.submitted",
        "tasks.requested",
        "task.events",
        "dlq",
        "batches.default.premium",
        "batches.default.free",
    )
    return provision_catalog(TopicCatalog.build(prefix=topic_prefix, partitions=dict.fromkeys(names, 1)))


@pytest.fixture
def settings(
    kafka_bootstrap: str, mongo_url: str, mongo_db: Any, topic_prefix: str, tmp_path: Path
) -> GatewaySettings:
    """Settings for this test; limits high enough not to interfere unless a test lowers them."""
    return GatewaySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        mongodb_url=Secret(mongo_url),
        mongodb_database=mongo_db.name,
        topic_prefix=topic_prefix,
        output_dir=tmp_path / "outputs",
        user_limit_per_minute=100_000,
        account_rate_per_minute=100_000,
        account_burst=10_000,
        publish_timeout_s=10.0,
    )


@dataclasses.dataclass
class Gateway:
    """A running app with a client, and helpers to make accounts in its database."""

    client: TestClient
    settings: GatewaySettings

    def account(self, tier: Tier = Tier.PREMIUM) -> NewAccount:
        state = self.client.app.state.gateway  # type: ignore[attr-defined]
        return self.client.portal.call(state.accounts.create, tier)  # type: ignore[union-attr]

    def headers(self, account: NewAccount, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {account.api_key}", **extra}


@pytest.fixture
def make_gateway(settings: GatewaySettings) -> Iterator[Callable[..., Gateway]]:
    """Start gateways (each one a separate app, as a separate process would be); all stop afterwards."""
    clients: list[TestClient] = []

    def start(clock: Callable[[], float] | None = None, **overrides: Any) -> Gateway:
        configured = dataclasses.replace(settings, **overrides)
        app = create_app(configured, clock=clock) if clock else create_app(configured)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return Gateway(client, configured)

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway], catalog: TopicCatalog) -> Gateway:
    return make_gateway()


def consume(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Event]:
    """Every event on ``topic``, decoded: read until each partition reports its end.

    Callers consume only after the gateway answered, i.e. after Kafka acknowledged every event they
    expect, so the end of each partition is the end of what there is.
    """
    consumer: Consumer = make_consumer(
        bootstrap, f"test-{uuid.uuid4().hex}", **{"enable.partition.eof": True}
    )
    events: list[Event] = []
    try:
        partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.subscribe([topic])
        ended: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(ended) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: only {len(ended)} of {partitions} partitions ended")
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
                continue
            raise_for_error(message)
            ended.discard(message.partition())
            events.append(CODEC.decode(message.value()))
        return events
    finally:
        consumer.close()
