"""The topic catalog: every topic Storee uses, with its key, events, partitions, replication and retention.

Names carry a configurable prefix (``storee.`` by default) so several deployments or test runs can
share one cluster. This module only describes; ``ops.topics`` provisions the catalog on a broker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from schemas.events import TASK_EVENT_TYPES, BatchReady, StorySubmitted, TaskRequested
from schemas.exceptions import CatalogError
from schemas.records import Tier

DAY_MS = 86_400_000
FOREVER = -1
DEFAULT_PREFIX = "storee."
DEFAULT_POOL = "default"

STORIES_SUBMITTED = "stories.submitted"
TASKS_REQUESTED = "tasks.requested"
TASK_EVENTS = "task.events"
DLQ = "dlq"

# The job view's rebuild sources (``streams.view_loop.view_topics``). FULL: a rebuild needs every record
# since the first story, so retention must be forever. RECENT: the batches only add when and in which
# batch a task waited (``batched_at``, the batch choice); a rebuild past their retention loses just that,
# so they must keep at least REBUILD_RECENT_MIN_MS (a week: far past any task's deadline).
REBUILD_FULL = "full"
REBUILD_RECENT = "recent"
REBUILD_RECENT_MIN_MS = 7 * DAY_MS

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PREFIX = re.compile(r"[A-Za-z0-9._-]*")
# No dots in pool names, so batches.<pool>.<tier> always splits one way.
_POOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the catalog wants it."""

    name: str
    base: str
    key: str
    events: tuple[str, ...]
    partitions: int
    replication_factor: int
    retention_ms: int
    cleanup_policy: str
    min_insync_replicas: int
    rebuild: str = ""  # REBUILD_FULL, REBUILD_RECENT, or "" when the job view is not built from it

    def config(self) -> dict[str, str]:
        """The topic-level Kafka configs the catalog manages, as the broker reports them."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "min.insync.replicas": str(self.min_insync_replicas),
        }


@dataclass(frozen=True, slots=True)
class _Default:
    key: str
    events: tuple[str, ...]
    partitions: int
    retention_ms: int


def _defaults(pools: Sequence[str]) -> dict[str, _Default]:
    # Submissions, tasks and task events are kept forever: the job view must be rebuildable from the
    # topics alone. Every topic uses cleanup.policy=delete: keys repeat per story, so compaction would
    # drop history. Batches are transient work (their tasks expire long before a week); the DLQ keeps a
    # month for an operator to look and replay. Partition counts bound a consumer group's parallelism;
    # production overrides them.
    task_events = tuple(cls.schema_name for cls in TASK_EVENT_TYPES)
    defaults = {
        STORIES_SUBMITTED: _Default("story_id", (StorySubmitted.schema_name,), 6, FOREVER),
        TASKS_REQUESTED: _Default("story_id", (TaskRequested.schema_name,), 12, FOREVER),
    }
    for pool in pools:
        for tier in Tier:
            defaults[f"batches.{pool}.{tier.value}"] = _Default(
                "batch signature", (BatchReady.schema_name,), 12, 7 * DAY_MS
            )
    defaults[TASK_EVENTS] = _Default("story_id", task_events, 12, FOREVER)
    defaults[DLQ] = _Default("original key", (), 3, 30 * DAY_MS)
    return defaults


@dataclass(frozen=True, slots=True)
class TopicCatalog:
    """Every topic of one deployment, built with :meth:`build`."""

    prefix: str
    pools: tuple[str, ...]
    topics: tuple[TopicSpec, ...]

    @classmethod
    def build(
        cls,
        prefix: str = DEFAULT_PREFIX,
        pools: Sequence[str] = (DEFAULT_POOL,),
        replication_factor: int = 1,
        min_insync_replicas: int = 2,
        partitions: Mapping[str, int] | None = None,
        retention_ms: Mapping[str, int] | None = None,
    ) -> TopicCatalog:
        """The catalog for ``prefix`` and ``pools``.

        ``min_insync_replicas`` is clamped to ``replication_factor`` (a single local broker gets 1, a
        three-broker cluster with the default 2 gets 2). ``partitions`` and ``retention_ms`` override
        the defaults per topic, keyed by the name without prefix (``"task.events"``).
        """
        if not _PREFIX.fullmatch(prefix):
            raise CatalogError(f"prefix may only hold letters, digits, '.', '_' and '-', got {prefix!r}")
        pools = tuple(pools)
        if not pools:
            raise CatalogError("pools must name at least one pool")
        for pool in pools:
            if not _POOL_NAME.fullmatch(pool):
                raise CatalogError(f"pool names are 1-64 letters, digits, '_' or '-', got {pool!r}")
        if len(set(pools)) != len(pools):
            raise CatalogError(f"pools must not repeat, got {list(pools)}")
        _check_positive("replication_factor", replication_factor)
        _check_positive("min_insync_replicas", min_insync_replicas)
        defaults = _defaults(pools)
        partitions = dict(partitions or {})
        retention = dict(retention_ms or {})
        for label, overrides in (("partitions", partitions), ("retention_ms", retention)):
            unknown = sorted(set(overrides) - set(defaults))
            if unknown:
                raise CatalogError(f"{label} names unknown topics {unknown}; known: {sorted(defaults)}")
        topics = []
        for base, default in defaults.items():
            count = partitions.get(base, default.partitions)
            _check_positive(f"partitions[{base!r}]", count)
            keep = retention.get(base, default.retention_ms)
            if keep < FOREVER or keep == 0:
                raise CatalogError(f"retention_ms[{base!r}] must be positive or -1 (forever), got {keep}")
            name = prefix + base
            if not _TOPIC_NAME.fullmatch(name):
                raise CatalogError(f"topic name {name!r} is not a valid Kafka topic name")
            topics.append(
                TopicSpec(
                    name=name,
                    base=base,
                    key=default.key,
                    events=default.events,
                    partitions=count,
                    replication_factor=replication_factor,
                    retention_ms=keep,
                    cleanup_policy="delete",
                    min_insync_replicas=min(min_insync_replicas, replication_factor),
                    rebuild=_rebuild_role(base),
                )
            )
        return cls(prefix, pools, tuple(topics))

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self.topics)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(topic.name for topic in self.topics)

    def carries(self, name: str, schema_name: str) -> bool:
        """Whether events of ``schema_name`` belong on the topic ``name`` (False for unknown topics)."""
        for topic in self.topics:
            if topic.name == name:
                return schema_name in topic.events
        return False

    def get(self, name: str) -> TopicSpec:
        """The topic with this full name."""
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise CatalogError(f"{name!r} is not in the catalog; known: {list(self.names)}")

    @property
    def stories_submitted(self) -> str:
        return self.prefix + STORIES_SUBMITTED

    @property
    def tasks_requested(self) -> str:
        return self.prefix + TASKS_REQUESTED

    @property
    def task_events(self) -> str:
        return self.prefix + TASK_EVENTS

    @property
    def dlq(self) -> str:
        return self.prefix + DLQ

    def batches(self, pool: str, tier: Tier | str) -> str:
        """The topic that carries ``pool``'s batches of ``tier``."""
        if pool not in self.pools:
            raise CatalogError(f"pool {pool!r} is not in the catalog; known: {list(self.pools)}")
        try:
            tier = Tier(tier)
        except ValueError:
            raise CatalogError(f"tier must be one of {[t.value for t in Tier]}, got {tier!r}") from None
        return f"{self.prefix}batches.{pool}.{tier.value}"


def _rebuild_role(base: str) -> str:
    if base in (STORIES_SUBMITTED, TASKS_REQUESTED, TASK_EVENTS):
        return REBUILD_FULL
    return REBUILD_RECENT if base.startswith("batches.") else ""


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise CatalogError(f"{name} must be at least 1, got {value}")
