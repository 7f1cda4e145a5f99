"""The topic catalog: names, prefixes, pools and per-topic settings."""

from __future__ import annotations

import pytest

from schemas.exceptions import CatalogError
from schemas.records import Tier
from schemas.topics import FOREVER, TopicCatalog


def test_default_catalog_names_every_topic() -> None:
    catalog = TopicCatalog.build()
    assert catalog.names == (
        "storee.stories.submitted",
        "storee.tasks.requested",
        "storee.batches.default.premium",
        "storee.batches.default.free",
        "storee.task.events",
        "storee.dlq",
    )
    assert catalog.batches("default", Tier.FREE) == "storee.batches.default.free"
    assert catalog.batches("default", "premium") == "storee.batches.default.premium"
    assert (catalog.stories_submitted, catalog.tasks_requested, catalog.task_events, catalog.dlq) == (
        "storee.stories.submitted",
        "storee.tasks.requested",
        "storee.task.events",
        "storee.dlq",
    )
    events = catalog.get("storee.task.events")
    assert events.key == "story_id" and "storee.v1.TaskCompleted" in events.events
    assert events.retention_ms == FOREVER and events.cleanup_policy == "delete"


def test_prefix_pools_and_overrides() -> None:
    catalog = TopicCatalog.build(
        prefix="t1.", pools=("wan", "audio"), partitions={"task.events": 48}, retention_ms={"dlq": 1000}
    )
    assert "t1.batches.audio.free" in catalog.names and len(catalog.names) == 8
    assert catalog.get("t1.task.events").partitions == 48
    assert catalog.get("t1.dlq").config() == {
        "retention.ms": "1000",
        "cleanup.policy": "delete",
        "min.insync.replicas": "1",
    }


@pytest.mark.parametrize(("rf", "min_isr", "expected"), [(1, 2, 1), (3, 2, 2), (3, 3, 3), (2, 5, 2)])
def test_min_insync_replicas_never_exceeds_the_replication_factor(
    rf: int, min_isr: int, expected: int
) -> None:
    catalog = TopicCatalog.build(replication_factor=rf, min_insync_replicas=min_isr)
    assert {t.min_insync_replicas for t in catalog} == {expected}
    assert {t.replication_factor for t in catalog} == {rf}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "bad prefix"}, "prefix"),
        ({"pools": ()}, "at least one pool"),
        ({"pools": ("a.b",)}, "pool names"),
        ({"pools": ("a", "a")}, "must not repeat"),
        ({"replication_factor": 0}, "replication_factor"),
        ({"partitions": {"nope": 3}}, "unknown topics"),
        ({"partitions": {"dlq": 0}}, "partitions"),
        ({"retention_ms": {"dlq": 0}}, "retention_ms"),
        ({"prefix": "x" * 250}, "not a valid Kafka topic name"),
    ],
)
def test_invalid_catalogs_are_refused_by_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        TopicCatalog.build(**kwargs)  # type: ignore[arg-type]


def test_unknown_pools_tiers_and_topics() -> None:
    catalog = TopicCatalog.build()
    with pytest.raises(CatalogError, match="pool 'gpu'"):
        catalog.batches("gpu", Tier.FREE)
    with pytest.raises(CatalogError, match="tier"):
        catalog.batches("default", "gold")
    with pytest.raises(CatalogError, match="not in the catalog"):
        catalog.get("storee.nope")


def test_every_rebuild_source_keeps_enough_for_a_rebuild() -> None:
    from schemas.topics import FOREVER, REBUILD_FULL, REBUILD_RECENT, REBUILD_RECENT_MIN_MS

    catalog = TopicCatalog.build(prefix="s.", pools=("wan", "audio"))
    roles = {spec.base: spec.rebuild for spec in catalog}
    assert roles["stories.submitted"] == roles["tasks.requested"] == roles["task.events"] == REBUILD_FULL
    assert roles["batches.wan.free"] == REBUILD_RECENT and roles["dlq"] == ""
    for spec in catalog:
        if spec.rebuild == REBUILD_FULL:
            assert spec.retention_ms == FOREVER, spec.name
        elif spec.rebuild == REBUILD_RECENT:
            assert spec.retention_ms == FOREVER or spec.retention_ms >= REBUILD_RECENT_MIN_MS, spec.name


def test_the_rebuild_sources_are_the_topics_the_view_reads() -> None:
    from streams.view_loop import view_topics

    catalog = TopicCatalog.build(prefix="s.", pools=("wan",))
    assert sorted(spec.name for spec in catalog if spec.rebuild) == sorted(view_topics(catalog))
