"""What ``storee dlq replay`` will do: which letters go back to which topic, and which it refuses (pure).

Never twice by accident: each replay leaves a *replay marker* on the DLQ topic itself, a record with an
empty value, keyed by the letter's id, whose ``storee.replay.of`` header names the letter and whose
``storee.replay.topic/partition/offset/at`` headers say where and when it went back. The DLQ topic is
already durable (``acks=all``, a month of retention, the same retention as the letters the markers
describe, so a marker never outlives its letter's relevance nor dies before it), read by every
``list``/``show``/``replay``, and needs no new topic in the catalog, no compaction and no database. A
letter with a marker is refused unless ``--again``. Markers carry no ``storee.dlq.origin.*`` headers,
so a reader counting dead letters by origin never mistakes one for a letter (``schemas.dlq``
``is_replay_marker`` tells them apart).

The replayed record is the original: the same key and value bytes, its original headers without the
``storee.dlq.*`` ones, plus ``storee.replay.from: <letter id>``, so a record that fails again carries
where it came from into its new dead letter. It goes to the origin topic's partition chosen by its key
(the same partitioner as every producer), not necessarily the partition it was read from.

Limits, stated: the record is produced before its marker, so a crash between the two leaves a replay
without a marker (the command exits 1 naming it); two operators replaying the same letter at the same
moment can both pass the check. Both are far narrower than "ran the command twice".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ops.dlq.letters import Letter, LetterId, Marker
from schemas.dlq import (
    HEADER_PREFIX,
    REPLAY_OF,
    REPLAY_OFFSET,
    REPLAY_PARTITION,
    REPLAY_TOPIC,
    REPLAYED_AT,
    REPLAYED_FROM,
)

Header = tuple[str, bytes | None]


class Verdict(StrEnum):
    REPLAY = "replay"
    ALREADY_REPLAYED = "already replayed"
    NO_ORIGIN = "no origin"
    ORIGIN_MISSING = "origin topic missing"


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One letter in the plan: where it goes, or why it does not."""

    letter: Letter
    verdict: Verdict
    topic: str | None
    note: str = ""
    earlier: tuple[Marker, ...] = ()

    @property
    def goes(self) -> bool:
        return self.verdict is Verdict.REPLAY

    def record_headers(self) -> list[Header]:
        """The replayed record's headers: the original ones and where it was replayed from."""
        return replayed_headers(self.letter)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    steps: tuple[ReplayStep, ...]

    @property
    def to_replay(self) -> tuple[ReplayStep, ...]:
        return tuple(step for step in self.steps if step.goes)

    @property
    def refused(self) -> tuple[ReplayStep, ...]:
        return tuple(step for step in self.steps if not step.goes)


def plan_replay(
    letters: Iterable[Letter],
    replays: Mapping[str, Sequence[Marker]],
    *,
    again: bool = False,
    existing_topics: frozenset[str] | None = None,
) -> ReplayPlan:
    """The plan for ``letters`` (each once, in id order) given the replay markers found so far."""
    seen: dict[LetterId, Letter] = {}
    for letter in letters:
        seen.setdefault(letter.id, letter)
    steps = []
    for letter_id in sorted(seen):
        letter = seen[letter_id]
        earlier = tuple(replays.get(str(letter_id), ()))
        steps.append(_step(letter, earlier, again, existing_topics))
    return ReplayPlan(tuple(steps))


def _step(
    letter: Letter, earlier: tuple[Marker, ...], again: bool, existing: frozenset[str] | None
) -> ReplayStep:
    if letter.reason is None:
        return ReplayStep(letter, Verdict.NO_ORIGIN, None, letter.problem)
    topic = letter.reason.origin_topic
    if existing is not None and topic not in existing:
        return ReplayStep(letter, Verdict.ORIGIN_MISSING, topic, f"{topic} does not exist")
    if earlier and not again:
        last = earlier[-1]
        note = f"to {last.topic}[{last.partition}]@{last.offset}; --again to replay it anyway"
        return ReplayStep(letter, Verdict.ALREADY_REPLAYED, topic, note, earlier)
    note = f"again ({len(earlier)} earlier)" if earlier else ""
    return ReplayStep(letter, Verdict.REPLAY, topic, note, earlier)


def replayed_headers(letter: Letter) -> list[Header]:
    """The original headers (no ``storee.dlq.*``, no earlier ``storee.replay.from``) and the new origin."""
    kept = [
        (name, value)
        for name, value in letter.record.headers
        if not name.startswith(HEADER_PREFIX) and name != REPLAYED_FROM
    ]
    return [*kept, (REPLAYED_FROM, str(letter.id).encode())]


def marker_headers(letter_id: LetterId, topic: str, partition: int, offset: int, at_ms: int) -> list[Header]:
    """The headers of the replay marker for a letter that went to ``topic[partition]@offset``."""
    return [
        (REPLAY_OF, str(letter_id).encode()),
        (REPLAY_TOPIC, topic.encode()),
        (REPLAY_PARTITION, str(partition).encode()),
        (REPLAY_OFFSET, str(offset).encode()),
        (REPLAYED_AT, str(at_ms).encode()),
    ]
