"""The result publisher: every record acknowledged before a commit, Kafka outages waited out.

Most cases script the producer's delivery reports; the last one uses a real librdkafka producer
pointed at a port where no broker listens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError

from gpu_consumers.exceptions import BatchHandedBack, KafkaClientBroken, ResultRefused
from gpu_consumers.failures import RetryPolicy
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.publisher import ResultPublisher
from ops.runtime.kafka import DurableProducer
from schemas.codec import Codec
from schemas.events import TaskProgress, TaskStarted
from schemas.exceptions import ContractError
from tests.gpu_consumers.helpers import make_batch

HOLD = "hold"  # a flush that gets no delivery report in time


@dataclass
class FakeMessage:
    name: str

    def topic(self) -> str:
        return self.name

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


@dataclass
class ScriptedProducer:
    """Answers every record pending at a flush with the next scripted outcome (None: acknowledged)."""

    answers: list[KafkaError | str | None]
    pending: list[tuple[str, object]] = field(default_factory=list)
    produced: list[str] = field(default_factory=list)

    def produce(self, topic: str, value: bytes, key: object = None, headers: object = None, on_delivery=None):  # noqa: ANN001, ANN201
        self.produced.append(topic)
        self.pending.append((topic, on_delivery))

    def flush(self, timeout: float = 30.0) -> int:
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, str):  # HOLD
            return len(self.pending)
        for topic, on_delivery in self.pending:
            on_delivery(answer, FakeMessage(topic))  # type: ignore[operator]
        self.pending.clear()
        return 0


def publisher(
    producer: object, *, stop_after: int | None = None
) -> tuple[ResultPublisher, list[float], ConsumerMetrics]:
    waits: list[float] = []
    metrics = ConsumerMetrics("tiny")

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return stop_after is not None and len(waits) >= stop_after

    return (
        ResultPublisher(
            producer,  # type: ignore[arg-type]
            Codec(),
            task_events="t.task.events",
            dlq="t.dlq",
            metrics=metrics,
            wait=wait,
            backoff=RetryPolicy(max_retries=0, base_s=0.01, max_s=0.05),
        ),
        waits,
        metrics,
    )


def started(index: int = 0) -> TaskStarted:
    batch = make_batch(["a", "b"])
    task = batch.tasks[index]
    return TaskStarted(
        sequence=2,
        story_id=task.story_id,
        task_id=task.task_id,
        batch_id=batch.batch_id,
        consumer_id="c",
        attempt=0,
    )


def progress() -> TaskProgress:
    event = started()
    return TaskProgress(
        sequence=3,
        story_id=event.story_id,
        task_id=event.task_id,
        batch_id=event.batch_id,
        consumer_id="c",
        step=1,
        total_steps=2,
    )


def test_acknowledged_records_confirm_at_once() -> None:
    producer = ScriptedProducer([None])
    results, waits, _ = publisher(producer)
    results.event(started())
    results.confirm(1.0)
    assert waits == [] and producer.produced == ["t.task.events"]


def test_records_that_timed_out_are_sent_again_until_acknowledged() -> None:
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    producer = ScriptedProducer([timed_out, HOLD, timed_out, None])
    results, waits, metrics = publisher(producer)
    results.event(started())
    results.confirm(1.0)
    assert producer.produced == ["t.task.events"] * 3
    assert len(waits) == 3 and all(0 < w <= 0.05 for w in waits)
    assert metrics.count("storee_gpu_delivery_waits_total") == 3


def test_a_lost_progress_event_is_not_waited_on() -> None:
    producer = ScriptedProducer([KafkaError(KafkaError._MSG_TIMED_OUT)])
    results, waits, _ = publisher(producer)
    results.event(progress())
    results.confirm(1.0)
    assert waits == [] and producer.produced == ["t.task.events"]


def test_a_record_refused_for_good_names_its_task_and_the_rest_stays_owed() -> None:
    producer = ScriptedProducer([KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None])
    results, _, _ = publisher(producer)
    event = started()
    results.event(event)
    with pytest.raises(ResultRefused) as refused:
        results.confirm(1.0)
    assert refused.value.task_ids == {event.task_id}
    results.confirm(1.0)  # nothing else was owed


def test_a_fatal_producer_error_breaks_the_client() -> None:
    producer = ScriptedProducer([KafkaError(KafkaError._FENCED, fatal=True)])
    results, _, _ = publisher(producer)
    results.event(started())
    with pytest.raises(KafkaClientBroken, match="fatal"):
        results.confirm(1.0)


def test_stopping_while_kafka_is_away_hands_the_batch_back() -> None:
    producer = ScriptedProducer([HOLD] * 10)
    results, waits, _ = publisher(producer, stop_after=2)
    results.event(started())
    with pytest.raises(BatchHandedBack, match="Kafka was unavailable"):
        results.confirm(1.0)
    assert len(waits) == 2


def test_an_event_breaking_the_contract_is_refused_before_it_is_produced() -> None:
    producer = ScriptedProducer([])
    results, _, _ = publisher(producer)
    event = started()
    with pytest.raises(ContractError, match="task_id"):
        results.event(TaskStarted(**{**event.to_record(), "task_id": "../escape", "event_id": "e"}))
    assert producer.produced == []


def test_a_real_producer_without_a_broker_waits_and_never_confirms() -> None:
    # Port 9 (discard) has no Kafka: librdkafka times the record out, the publisher sends it again.
    producer = DurableProducer(
        "127.0.0.1:9", **{"message.timeout.ms": 300, "socket.connection.setup.timeout.ms": 1000}
    )
    results, waits, metrics = publisher(producer, stop_after=3)
    try:
        results.event(started())
        with pytest.raises(BatchHandedBack):
            results.confirm(0.2)
        assert len(waits) == 3 and metrics.count("storee_gpu_delivery_waits_total") == 3
    finally:
        producer.close(timeout=0)
