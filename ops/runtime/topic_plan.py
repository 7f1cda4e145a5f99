"""Comparing the topic catalog with what a cluster has: pure values in, a plan and drift out.

Kafka can add partitions and change topic configs in place, so those two kinds of drift have a fix
(behind an explicit flag); anything else (fewer partitions wanted, another replication factor) needs an
operator and is only reported. ``ops.topics`` talks to the broker around this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.topics import TopicCatalog, TopicSpec

# Exit status of ``storee topics ensure`` while drift remains (0: all match, 1: errors).
EXIT_DRIFT = 2
FIX_PARTITIONS = "--fix-partitions"
FIX_CONFIG = "--fix-config"


@dataclass(frozen=True, slots=True)
class ExistingTopic:
    """A topic as the cluster has it."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Drift:
    """One setting where the cluster differs from the catalog; ``fix`` names the flag that fixes it."""

    topic: str
    setting: str
    expected: str
    actual: str
    fix: str | None

    def __str__(self) -> str:
        remedy = f"fix with {self.fix}" if self.fix else "needs an operator"
        return f"{self.topic}: {self.setting} is {self.actual}, catalog says {self.expected} ({remedy})"


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """What ``ensure`` would do: topics to create, topics that match, and drift."""

    create: tuple[TopicSpec, ...]
    matched: tuple[str, ...]
    drift: tuple[Drift, ...]


@dataclass(frozen=True, slots=True)
class EnsureReport:
    """What ``ensure`` did, and the drift that remains."""

    created: tuple[str, ...]
    matched: tuple[str, ...]
    fixed: tuple[Drift, ...]
    drift: tuple[Drift, ...]

    @property
    def exit_code(self) -> int:
        return EXIT_DRIFT if self.drift else 0


def plan(catalog: TopicCatalog, existing: Mapping[str, ExistingTopic]) -> TopicPlan:
    """Compare the catalog with the cluster's topics; decide nothing destructive."""
    create, matched, drift = [], [], []
    for spec in catalog:
        topic = existing.get(spec.name)
        if topic is None:
            create.append(spec)
            continue
        found = drift_of(spec, topic)
        if found:
            drift.extend(found)
        else:
            matched.append(spec.name)
    return TopicPlan(tuple(create), tuple(matched), tuple(drift))


def drift_of(spec: TopicSpec, topic: ExistingTopic) -> list[Drift]:
    """Every setting where ``topic`` differs from ``spec``."""
    found = []
    if topic.partitions != spec.partitions:
        # Kafka can add partitions but never remove them.
        fix = FIX_PARTITIONS if topic.partitions < spec.partitions else None
        found.append(Drift(spec.name, "partitions", str(spec.partitions), str(topic.partitions), fix))
    if topic.replication_factor != spec.replication_factor:
        found.append(
            Drift(
                spec.name,
                "replication factor",
                str(spec.replication_factor),
                str(topic.replication_factor),
                None,
            )
        )
    for key, expected in spec.config().items():
        actual = topic.config.get(key)
        if actual is None or _normalize(key, actual) != _normalize(key, expected):
            found.append(Drift(spec.name, key, expected, "unset" if actual is None else actual, FIX_CONFIG))
    return found


def _normalize(key: str, value: str) -> str:
    # The broker may list cleanup policies in any order ("delete,compact").
    return (
        ",".join(sorted(part.strip() for part in value.split(",")))
        if key == "cleanup.policy"
        else value.strip()
    )
