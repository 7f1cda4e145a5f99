"""The replay plan: per partition, the current and the new offset, what is redone or skipped (pure).

Values in, a plan out, like Burrow's evaluator: :func:`compute` takes the group's partitions as read
(:class:`PartitionState`) and a :class:`~ops.replay.spec.ResetSpec`, and decides with a few named rules:

* **position**: where the group reads next: its commit, or the log start when it never committed on
  the partition or retention deleted the committed offset (every Storee consumer uses
  ``auto.offset.reset=earliest``); a note says which.
* **target**: to-earliest: the log start; to-latest: the log end; to-offset: N; shift-by: position + N;
  to-datetime and by-duration: the first offset whose record timestamp is at or after the time (Kafka's
  offsets-for-times), the log end when no record is that new; from-file: the file's offset (partitions
  the file does not name are out of the plan).
* **clamp**: a target before the log start (retention deleted those records) becomes the log start, one
  past the log end becomes the log end, and a note says so: a replay never asks for records that are
  not there.
* **effect**: ``reprocess = position - new`` records are consumed again when the target is behind the
  position, ``skip = new - position`` are never consumed when it is ahead.
* **change**: a partition changes when the new offset differs from its commit (a partition without a
  commit always does: the reset commits it). A plan with no change is a no-op.

The time range a replay covers (the timestamps of its first and last record) is read afterwards and
added with :meth:`ReplayPlan.with_times`; the members and the stage effects come from the shell.
A GPU stage's plan with ``--rerender`` carries the re-render request ``--execute`` stores
(:func:`rerender_windows` gives its windows: the offsets redone on the GPU stage's partitions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gpu_consumers.rerender import RerenderRequest
from ops.lag.model import Member
from ops.replay.spec import Mode, ResetSpec

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition of the group as read: ``committed`` is ``None`` without a commit; ``at_time`` is
    the offset Kafka found for the spec's time (``None``: no record that new), time modes only."""

    topic: str
    partition: int
    committed: int | None
    log_start: int
    log_end: int
    at_time: int | None = None


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """One partition's reset; ``first_ms``/``last_ms`` are the timestamps of the records redone."""

    topic: str
    partition: int
    stage: str | None
    committed: int | None
    position: int
    new: int
    log_start: int
    log_end: int
    notes: tuple[str, ...] = ()
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def reprocess(self) -> int:
        return max(0, self.position - self.new)

    @property
    def skip(self) -> int:
        return max(0, self.new - self.position)

    @property
    def changes(self) -> bool:
        return self.committed != self.new

    @property
    def redone(self) -> tuple[int, int] | None:
        """The offsets ``[first, last]`` consumed again, ``None`` when nothing is."""
        return (self.new, self.position - 1) if self.reprocess else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "stage": self.stage,
            "committed": self.committed,
            "position": self.position,
            "new": self.new,
            "log_start": self.log_start,
            "log_end": self.log_end,
            "reprocess": self.reprocess,
            "skip": self.skip,
            "first_record_at": iso_ms(self.first_ms),
            "last_record_at": iso_ms(self.last_ms),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """A whole reset of one group: what the table shows, ``--json`` prints and ``--export`` writes."""

    group: str
    spec: ResetSpec
    partitions: tuple[PartitionPlan, ...]
    members: tuple[Member, ...] = ()
    effects: Mapping[str, str] = field(default_factory=dict)  # stage -> what its replay redoes
    refusals: tuple[str, ...] = ()  # why --execute would be refused, empty when it may run
    rerender: RerenderRequest | None = None  # stored by --execute before the offsets move (GPU stages)
    rerender_uri: str | None = None  # where it is stored (the GPU consumers' output store)

    @property
    def changes(self) -> bool:
        return any(p.changes for p in self.partitions)

    @property
    def reprocess(self) -> int:
        return sum(p.reprocess for p in self.partitions)

    @property
    def skip(self) -> int:
        return sum(p.skip for p in self.partitions)

    @property
    def new_offsets(self) -> dict[TopicPartitionKey, int]:
        return {(p.topic, p.partition): p.new for p in self.partitions if p.changes}

    @property
    def time_range(self) -> tuple[int | None, int | None]:
        firsts = [p.first_ms for p in self.partitions if p.first_ms is not None]
        lasts = [p.last_ms for p in self.partitions if p.last_ms is not None]
        return (min(firsts) if firsts else None, max(lasts) if lasts else None)

    def with_times(self, times: Mapping[TopicPartitionKey, tuple[int | None, int | None]]) -> ReplayPlan:
        rows = tuple(
            replace(
                p,
                first_ms=times.get((p.topic, p.partition), (None, None))[0],
                last_ms=times.get((p.topic, p.partition), (None, None))[1],
            )  # fmt: skip
            for p in self.partitions
        )
        return replace(self, partitions=rows)

    def as_dict(self) -> dict[str, Any]:
        first, last = self.time_range
        return {
            "group": self.group,
            "mode": self.spec.mode.value,
            "value": self.spec.label or None,
            "changes": self.changes,
            "reprocess": self.reprocess,
            "skip": self.skip,
            "first_record_at": iso_ms(first),
            "last_record_at": iso_ms(last),
            "effects": dict(self.effects),
            "members": [
                {"client_id": m.client_id, "host": m.host, "member_id": m.member_id} for m in self.members
            ],  # fmt: skip
            "refusals": list(self.refusals),
            "rerender": None
            if self.rerender is None
            else {**self.rerender.as_dict(), "stored_at": self.rerender_uri},
            "partitions": [p.as_dict() for p in self.partitions],
        }


def rerender_windows(
    plan: ReplayPlan, is_gpu: Callable[[str | None], bool]
) -> list[tuple[str, int, int, int]]:
    """``(topic, partition, first, last)`` of the offsets redone on the plan's GPU stage partitions."""
    return [
        (p.topic, p.partition, *p.redone) for p in plan.partitions if is_gpu(p.stage) and p.redone is not None
    ]


def compute(
    group: str,
    states: Sequence[PartitionState],
    spec: ResetSpec,
    stages: Mapping[str, str | None] | None = None,
) -> ReplayPlan:
    """The plan for ``group``'s ``states`` (sorted by topic and partition) under ``spec``."""
    stages = stages or {}
    rows = []
    for state in sorted(states, key=lambda s: (s.topic, s.partition)):
        if spec.mode is Mode.FILE and (state.topic, state.partition) not in spec.offsets:
            continue
        position, notes = _position(state)
        wanted = _target(state, spec, position)
        new, clamp_note = _clamp(wanted, state)
        if clamp_note:
            notes.append(clamp_note)
        rows.append(
            PartitionPlan(
                topic=state.topic,
                partition=state.partition,
                stage=stages.get(state.topic),
                committed=state.committed,
                position=position,
                new=new,
                log_start=state.log_start,
                log_end=state.log_end,
                notes=tuple(notes),
            )
        )
    return ReplayPlan(group, spec, tuple(rows))


def _position(state: PartitionState) -> tuple[int, list[str]]:
    if state.committed is None:
        return state.log_start, [f"no commit: the group would start at the log start {state.log_start}"]
    if state.committed < state.log_start:
        return state.log_start, [
            f"committed {state.committed} was deleted by retention: the group reads from {state.log_start}"
        ]
    return state.committed, []


def _target(state: PartitionState, spec: ResetSpec, position: int) -> int:
    match spec.mode:
        case Mode.EARLIEST:
            return state.log_start
        case Mode.LATEST:
            return state.log_end
        case Mode.OFFSET:
            return _value(spec)
        case Mode.SHIFT:
            return position + _value(spec)
        case Mode.DATETIME | Mode.DURATION:
            return state.log_end if state.at_time is None or state.at_time < 0 else state.at_time
        case Mode.FILE:
            return spec.offsets[(state.topic, state.partition)]
    raise ValueError(f"unknown mode {spec.mode!r}")  # pragma: no cover - Mode is closed


def _value(spec: ResetSpec) -> int:
    if spec.value is None:
        raise ValueError(f"--{spec.mode.value} needs a value")
    return spec.value


def _clamp(wanted: int, state: PartitionState) -> tuple[int, str | None]:
    if wanted < state.log_start:
        return state.log_start, (
            f"clamped: {wanted} is before the log start {state.log_start} "
            "(retention deleted the records before it)"
        )
    if wanted > state.log_end:
        return state.log_end, f"clamped: {wanted} is past the log end {state.log_end}"
    return wanted, None


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
