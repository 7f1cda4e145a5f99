"""One judged observation: every partition with its status, rolled up per topic, group, stage and tier.

The table, ``--json`` and the exporter all render a :class:`LagSnapshot`, so they cannot disagree;
:meth:`LagSnapshot.as_dict` is the JSON document of ``storee lag --json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ops.lag.groups import WatchedGroup
from ops.lag.model import Member, Observation, PartitionKey, PartitionReading
from ops.lag.settings import LagSettings
from ops.lag.status import GroupStatus, PartitionStatus, Verdict, evaluate, group_status

# How partition statuses rank when a topic's status is its worst partition's.
_PARTITION_RANK = {
    PartitionStatus.OK: 0,
    PartitionStatus.WARN: 1,
    PartitionStatus.REWIND: 2,
    PartitionStatus.STALL: 3,
    PartitionStatus.STOP: 4,
}


@dataclass(frozen=True, slots=True)
class PartitionView:
    reading: PartitionReading
    verdict: Verdict
    stage: str | None
    tier: str
    samples: int  # readings in the window that judged it


@dataclass(frozen=True, slots=True)
class TopicView:
    group: str
    topic: str
    stage: str | None
    tier: str
    partitions: tuple[PartitionView, ...]

    @property
    def lag(self) -> int:
        return sum(p.reading.lag for p in self.partitions)

    @property
    def lag_seconds(self) -> float | None:
        return _max_age(self.partitions)

    @property
    def status(self) -> PartitionStatus:
        return max(
            (p.verdict.status for p in self.partitions),
            key=_PARTITION_RANK.__getitem__,
            default=PartitionStatus.OK,
        )

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(dict.fromkeys(p.reading.member for p in self.partitions if p.reading.member is not None))


@dataclass(frozen=True, slots=True)
class GroupView:
    group: str
    state: str
    members: tuple[Member, ...]
    topics: tuple[TopicView, ...]

    @property
    def partitions(self) -> tuple[PartitionView, ...]:
        return tuple(p for t in self.topics for p in t.partitions)

    @property
    def status(self) -> GroupStatus:
        return group_status(p.verdict for p in self.partitions)

    @property
    def lag(self) -> int:
        return sum(t.lag for t in self.topics)

    @property
    def lag_seconds(self) -> float | None:
        return _max_age(self.partitions)


@dataclass(frozen=True, slots=True)
class StageView:
    """A Storee stage and tier: records waiting, and how long the oldest of them has waited."""

    stage: str
    tier: str
    lag: int
    wait_seconds: float | None


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    at: float
    duration_s: float
    window_s: float
    groups: tuple[GroupView, ...]

    @property
    def status(self) -> GroupStatus:
        return max((g.status for g in self.groups), key=lambda s: s.rank, default=GroupStatus.OK)

    @property
    def stages(self) -> tuple[StageView, ...]:
        by_stage: dict[tuple[str, str], list[PartitionView]] = {}
        for group in self.groups:
            for topic in group.topics:
                if topic.stage is not None:
                    by_stage.setdefault((topic.stage, topic.tier), []).extend(topic.partitions)
        return tuple(
            StageView(stage, tier, sum(p.reading.lag for p in views), _max_age(views))
            for (stage, tier), views in by_stage.items()
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``storee lag --json``."""
        return {
            "observed_at": self.at,
            "observation_seconds": self.duration_s,
            "window_seconds": self.window_s,
            "status": self.status.value,
            "groups": [_group_dict(g) for g in self.groups],
            "stages": [
                {"stage": s.stage, "tier": s.tier, "lag": s.lag, "wait_seconds": s.wait_seconds}
                for s in self.stages
            ],
        }


def build_snapshot(
    observation: Observation,
    windows: Mapping[PartitionKey, Sequence[PartitionReading]],
    watched: Iterable[WatchedGroup],
    settings: LagSettings,
) -> LagSnapshot:
    """Judge every partition of ``observation`` over its window (which ends with this reading)."""
    specs = {w.group: w for w in watched}
    groups = []
    for reading in observation.groups:
        spec = specs.get(reading.group, WatchedGroup(reading.group))
        by_topic: dict[str, list[PartitionView]] = {}
        for partition in reading.partitions:
            topic = spec.topic(partition.topic)
            window = windows.get(partition.key) or (partition,)
            verdict = evaluate(window, settings.window_s, settings.warn_seconds_for(topic.tier))
            by_topic.setdefault(partition.topic, []).append(
                PartitionView(partition, verdict, topic.stage, topic.tier, len(window))
            )
        topics = tuple(
            TopicView(
                reading.group,
                name,
                spec.topic(name).stage,
                spec.topic(name).tier,
                tuple(sorted(views, key=lambda v: v.reading.partition)),
            )
            for name, views in by_topic.items()
        )
        groups.append(GroupView(reading.group, reading.state, reading.members, topics))
    return LagSnapshot(observation.at, observation.duration_s, settings.window_s, tuple(groups))


def _max_age(views: Iterable[PartitionView]) -> float | None:
    """The oldest waiting record's age; ``None`` only when some lagging partition's age is unknown and
    no other one is known either."""
    ages = [p.reading.lag_seconds for p in views]
    known = [a for a in ages if a is not None]
    if known:
        return max(known)
    return None if ages else 0.0


def _member_dict(member: Member | None) -> dict[str, str] | None:
    if member is None:
        return None
    return {"client_id": member.client_id, "host": member.host, "member_id": member.member_id}


def _group_dict(group: GroupView) -> dict[str, Any]:
    return {
        "group": group.group,
        "state": group.state,
        "status": group.status.value,
        "lag": group.lag,
        "lag_seconds": group.lag_seconds,
        "members": [_member_dict(m) for m in group.members],
        "topics": [
            {
                "topic": t.topic,
                "stage": t.stage,
                "tier": t.tier,
                "partitions": len(t.partitions),
                "lag": t.lag,
                "lag_seconds": t.lag_seconds,
                "status": t.status.value,
                "members": len(t.members),
            }
            for t in group.topics
        ],
        "partitions": [
            {
                "topic": p.reading.topic,
                "partition": p.reading.partition,
                "committed": p.reading.committed,
                "log_start": p.reading.log_start,
                "log_end": p.reading.log_end,
                "lag": p.reading.lag,
                "lag_seconds": p.reading.lag_seconds,
                "status": p.verdict.status.value,
                "reason": p.verdict.reason,
                "samples": p.samples,
                "member": _member_dict(p.reading.member),
            }
            for p in group.partitions
        ],
    }
