"""Ending records a member will not run: the real publisher (contract checked), a scripted producer."""

from __future__ import annotations

import dataclasses

from gpu_consumers.endings import Endings
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.work import Refusal, RejectedRecord, read_batch
from schemas.codec import Codec
from schemas.events import TaskFailed
from schemas.records import TaskType, Tier
from tests.gpu_consumers.helpers import POOL, make_batch
from tests.gpu_consumers.test_publisher import ScriptedProducer, publisher


def refuse(value: bytes) -> tuple[ScriptedProducer, list[TaskFailed]]:
    read = read_batch(Codec(), value, topic="t", pool=POOL, task_types=frozenset({TaskType.TEXT_TO_VIDEO}))
    assert isinstance(read, Refusal)
    producer = ScriptedProducer([])
    results, _, _ = publisher(producer)
    endings = Endings(results, ConsumerMetrics(POOL), "host/1/cpu")
    produced: list[bytes] = []
    original = producer.produce

    def keep(topic: str, value: bytes, **kwargs: object) -> None:
        produced.append(value)
        original(topic, value, **kwargs)

    producer.produce = keep  # type: ignore[method-assign]
    record = RejectedRecord(Tier.FREE, "t", 0, 5, b"k", value, None, read.error, read.reason, read.batch)
    endings.refuse(record)
    failed = [e for e in (Codec().decode(v) for v in produced[:-1]) if isinstance(e, TaskFailed)]
    return producer, failed


def test_every_task_the_job_view_can_name_is_failed_even_with_out_of_range_fields() -> None:
    batch = make_batch(["a", "b", "c"])
    tasks = (
        dataclasses.replace(batch.tasks[0], sequence=2**63 - 1),
        dataclasses.replace(batch.tasks[1], attempt=-1),
        dataclasses.replace(batch.tasks[2], story_id="../x", task_id="../x:2"),
    )
    producer, failed = refuse(Codec().encode(dataclasses.replace(batch, tasks=tasks)))
    assert [f.task_id for f in failed] == [batch.tasks[0].task_id, batch.tasks[1].task_id]
    assert failed[0].sequence == 2**53 and failed[1].attempt == 0
    assert {f.error_class for f in failed} == {"ContractError"}
    assert producer.produced == ["t.task.events", "t.task.events", "t.dlq"]


def test_an_undecodable_record_is_only_dead_lettered() -> None:
    producer, failed = refuse(b"\x00garbage")
    assert failed == [] and producer.produced == ["t.dlq"]
