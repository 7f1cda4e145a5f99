"""``storee topics``: the pure plan, and ensure/list against the real broker."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ops import topics
from ops.cli import main
from ops.runtime.config import Env
from ops.runtime.kafka import admin_client
from ops.runtime.provisioning import describe_topics, ensure_topics
from ops.runtime.topic_plan import (
    EXIT_DRIFT,
    FIX_CONFIG,
    FIX_PARTITIONS,
    Drift,
    EnsureReport,
    ExistingTopic,
    plan,
)
from ops.topics import TopicSettings
from schemas.topics import TopicCatalog, TopicSpec


def existing(spec: TopicSpec, **changes: object) -> ExistingTopic:
    """The topic as a cluster that matches the catalog has it, with ``changes``."""
    values: dict[str, object] = dict(
        name=spec.name,
        partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        config=spec.config(),
    )
    values.update(changes)
    return ExistingTopic(**values)  # type: ignore[arg-type]


CATALOG = TopicCatalog.build(prefix="p.", replication_factor=1)
EVENTS = CATALOG.get("p.task.events")


def test_plan_creates_what_is_missing_and_leaves_what_matches() -> None:
    result = plan(CATALOG, {EVENTS.name: existing(EVENTS)})
    assert result.matched == (EVENTS.name,)
    assert {spec.name for spec in result.create} == set(CATALOG.names) - {EVENTS.name}
    assert result.drift == ()


def test_plan_reports_drift_with_its_fix() -> None:
    cluster = {
        EVENTS.name: existing(
            EVENTS,
            partitions=4,
            replication_factor=3,
            config={"retention.ms": "1000", "cleanup.policy": "compact"},
        )
    }
    drift = {d.setting: d for d in plan(CATALOG, cluster).drift}
    assert drift["partitions"] == Drift(EVENTS.name, "partitions", "12", "4", FIX_PARTITIONS)
    assert drift["replication factor"].fix is None
    assert drift["retention.ms"] == Drift(EVENTS.name, "retention.ms", "-1", "1000", FIX_CONFIG)
    assert drift["cleanup.policy"].actual == "compact"
    assert drift["min.insync.replicas"].actual == "unset"
    assert "fix with --fix-partitions" in str(drift["partitions"])


def test_more_partitions_than_the_catalog_cannot_be_fixed() -> None:
    (drift,) = plan(CATALOG, {EVENTS.name: existing(EVENTS, partitions=64)}).drift
    assert drift.fix is None and "needs an operator" in str(drift)


def test_exit_code_is_two_while_drift_remains() -> None:
    assert EnsureReport(("a",), (), (), ()).exit_code == 0
    assert (
        EnsureReport((), (), (), (Drift("t", "partitions", "2", "1", FIX_PARTITIONS),)).exit_code
        == EXIT_DRIFT
    )


def test_topic_settings_from_env() -> None:
    settings = TopicSettings.from_env(Env({"GPU_POOLS": "wan, audio", "TOPIC_REPLICATION_FACTOR": "3"}))
    # "default" always exists: the GPU consumers run it unless configured otherwise.
    assert settings == TopicSettings(
        pools=("default", "wan", "audio"), replication_factor=3, min_insync_replicas=2
    )
    assert TopicSettings.from_env(Env({})).pools == ("default",)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.2)


@pytest.fixture
def admin(kafka_bootstrap: str, topic_prefix: str) -> Iterator[AdminClient]:
    client = admin_client(kafka_bootstrap)
    yield client
    # Metadata may lag behind a creation the test started, so look again until nothing is left.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        names = [name for name in client.list_topics(timeout=10).topics if name.startswith(topic_prefix)]
        if not names:
            return
        for future in client.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # already gone: the next look decides
                future.result(timeout=30)
        time.sleep(0.5)


@pytest.mark.integration
def test_ensure_creates_then_leaves_then_reports_and_fixes_drift(
    admin: AdminClient, topic_prefix: str
) -> None:
    catalog = TopicCatalog.build(
        prefix=topic_prefix,
        pools=("default", "audio"),
        replication_factor=1,
        partitions={"task.events": 3, "tasks.requested": 2},
    )

    first = ensure_topics(admin, catalog)
    assert set(first.created) == set(catalog.names) and first.exit_code == 0
    cluster = describe_topics(admin, catalog.names)
    assert cluster[catalog.task_events].partitions == 3
    assert cluster[catalog.dlq].config["retention.ms"] == str(30 * 86_400_000)
    assert cluster[catalog.dlq].config["min.insync.replicas"] == "1"

    again = ensure_topics(admin, catalog)
    assert (again.created, again.drift, again.fixed) == ((), (), ())
    assert set(again.matched) == set(catalog.names)

    grown = TopicCatalog.build(
        prefix=topic_prefix,
        pools=("default", "audio"),
        replication_factor=1,
        partitions={"task.events": 5, "tasks.requested": 2},
        retention_ms={"dlq": 3_600_000},
    )
    drifted = ensure_topics(admin, grown)
    assert drifted.exit_code == EXIT_DRIFT and drifted.created == ()
    assert {(d.topic, d.setting) for d in drifted.drift} == {
        (grown.task_events, "partitions"),
        (grown.dlq, "retention.ms"),
    }
    assert describe_topics(admin, [grown.task_events])[grown.task_events].partitions == 3  # report only

    fixed = ensure_topics(admin, grown, fix_partitions=True, fix_config=True)
    assert fixed.exit_code == 0 and len(fixed.fixed) == 2
    # The broker acknowledges before every metadata cache has the new partitions.
    wait_until(lambda: ensure_topics(admin, grown).exit_code == 0, "drift is fixed")
    after = describe_topics(admin, grown.names)
    assert after[grown.task_events].partitions == 5
    assert after[grown.dlq].config["retention.ms"] == "3600000"


@pytest.mark.integration
def test_cli_ensure_and_list(
    admin: AdminClient, kafka_bootstrap: str, topic_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A topic someone made by hand with too few partitions: reported, kept, never recreated.
    futures = admin.create_topics([NewTopic(f"{topic_prefix}dlq", 1, 1)], operation_timeout=30)
    futures[f"{topic_prefix}dlq"].result(timeout=30)
    args = ["topics", "ensure", "--bootstrap-servers", kafka_bootstrap, "--prefix", topic_prefix]
    assert main(args) == EXIT_DRIFT
    out = capsys.readouterr().out
    assert "created" in out and "drift" in out and "partitions" in out

    assert main([*args, "--fix-partitions", "--fix-config"]) == 0
    wait_until(lambda: main(args) == 0, "ensure finds no drift")
    assert main(["topics", "list", "--bootstrap-servers", kafka_bootstrap, "--prefix", topic_prefix]) == 0
    listing = capsys.readouterr().out
    assert f"{topic_prefix}task.events" in listing and "missing" not in listing


@pytest.mark.integration
def test_ensure_survives_a_topic_created_behind_its_back(
    admin: AdminClient, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = TopicCatalog.build(prefix=topic_prefix)
    admin.create_topics([NewTopic(catalog.dlq, 1, 1)], operation_timeout=30)[catalog.dlq].result(timeout=30)
    real = topics.describe_topics
    looks: Iterator[dict[str, ExistingTopic]] = iter(
        [{}]
    )  # the first look misses the topic, as a concurrent creator would make it
    monkeypatch.setattr(topics, "describe_topics", lambda *a, **k: next(looks, None) or real(*a, **k))

    report = ensure_topics(admin, catalog)
    assert set(report.created) == set(catalog.names) - {catalog.dlq}
    assert {(d.topic, d.setting) for d in report.drift} >= {(catalog.dlq, "partitions")}
