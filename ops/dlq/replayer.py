"""Carrying out a replay plan: each letter back on its origin topic, then its replay marker.

Each record is produced with :meth:`DurableProducer.produce_sync` (``acks=all``, idempotence) and its
marker only once Kafka acknowledged the record, so a marker never claims a replay that did not happen.
The first failure stops the replay: :class:`ReplayIncomplete` names what went back and what did not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from ops.dlq.exceptions import ReplayIncomplete
from ops.dlq.plan import ReplayPlan, ReplayStep, marker_headers
from ops.runtime.exceptions import StoreeError
from ops.runtime.kafka import DurableProducer


@dataclass(frozen=True, slots=True)
class Replayed:
    """A letter that went back: where its record landed and where its marker is."""

    step: ReplayStep
    partition: int
    offset: int
    marker: str

    @property
    def landed(self) -> str:
        return f"{self.step.topic}[{self.partition}]@{self.offset}"


def execute(
    plan: ReplayPlan, producer: DurableProducer, dlq_topic: str, clock: Callable[[], int]
) -> list[Replayed]:
    """Produce every step of ``plan`` that goes, with its marker; stop at the first failure."""
    done: list[Replayed] = []
    for step in plan.to_replay:
        letter = step.letter
        topic = cast(str, step.topic)
        try:
            # A null value stays null: the record goes back exactly as it was.
            sent = producer.produce_sync(
                topic, cast(bytes, letter.record.value), key=letter.record.key, headers=step.record_headers()
            )
        except StoreeError as exc:
            raise ReplayIncomplete(_so_far(done) + f"; {letter.id} was not replayed: {exc}") from exc
        partition, offset = sent.partition() or 0, sent.offset() or 0
        try:
            mark = producer.produce_sync(
                dlq_topic,
                b"",
                key=str(letter.id).encode(),
                headers=marker_headers(letter.id, topic, partition, offset, clock()),
            )
        except StoreeError as exc:
            raise ReplayIncomplete(
                _so_far(done) + f"; {letter.id} went to {topic}[{partition}]@{offset} but its replay "
                f"marker was not written ({exc}): it is not protected against a second replay"
            ) from exc
        done.append(Replayed(step, partition, offset, f"{mark.partition()}:{mark.offset()}"))
    return done


def _so_far(done: list[Replayed]) -> str:
    if not done:
        return "replay stopped before any letter went back"
    return "replay stopped; replayed " + ", ".join(f"{r.step.letter.id} -> {r.landed}" for r in done)
