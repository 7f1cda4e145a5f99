"""Shared fixtures: the real local stack, brought up once per run, and per-test isolation.

The stack is started (or a running one reused) on first use and stopped at the end only if this run
started it; set ``STOREE_KEEP_STACK=1`` to leave it running for the next run. ``KAFKA_BOOTSTRAP_SERVERS``
and ``MONGODB_URL`` point the tests at external servers instead. Each test gets its own topic prefix
and its own database, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import NewTopic
from pymongo import MongoClient
from pymongo.database import Database

from ops.runtime.config import Env
from ops.runtime.kafka import admin_client
from ops.runtime.provisioning import ensure_topics
from ops.stack import LocalStack, StackSettings
from schemas.topics import TopicCatalog


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    stack = LocalStack(StackSettings.from_env())
    started = stack.up()
    yield stack
    if started and not Env().bool("STOREE_KEEP_STACK", False):
        stack.down(only=started)


@pytest.fixture(scope="session")
def kafka_bootstrap(local_stack: LocalStack) -> str:
    return local_stack.bootstrap_servers


@pytest.fixture(scope="session")
def mongo_url(local_stack: LocalStack) -> str:
    return local_stack.mongodb_url


@pytest.fixture(scope="session")
def mongo_client(mongo_url: str) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(mongo_url, serverSelectionTimeoutMS=10_000, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def unique_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic_prefix(unique_id: str) -> str:
    """A topic prefix only this test uses, e.g. ``t3f9a1c2b7d.``."""
    return f"t{unique_id}."


@pytest.fixture
def mongo_db(mongo_client: MongoClient, unique_id: str) -> Iterator[Database]:
    """A database only this test uses, dropped afterwards."""
    name = f"t_{unique_id}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create topics for one test and delete them after it."""
    admin = admin_client(kafka_bootstrap)
    created: list[str] = []

    def create(
        name: str, partitions: int = 1, replication: int = 1, config: dict[str, str] | None = None
    ) -> str:
        futures = admin.create_topics([NewTopic(name, partitions, replication, config=config or {})])
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield create
    if created:
        for future in admin.delete_topics(created).values():
            # Cleanup must not mask the test's own result.
            with contextlib.suppress(Exception):
                future.result(timeout=30)


@pytest.fixture
def provision_catalog(kafka_bootstrap: str) -> Iterator[Callable[[TopicCatalog], TopicCatalog]]:
    """Create a catalog's topics for one test (``storee topics ensure``'s code) and delete them after it."""
    admin = admin_client(kafka_bootstrap)
    provisioned: list[TopicCatalog] = []

    def provision(catalog: TopicCatalog) -> TopicCatalog:
        ensure_topics(admin, catalog)
        provisioned.append(catalog)
        return catalog

    yield provision
    names = [name for catalog in provisioned for name in catalog.names]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):  # cleanup must not mask the test's own result
                future.result(timeout=30)
