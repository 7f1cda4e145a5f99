"""One bad record never costs another, against the real broker: each bad batch ends, the next one runs.

A member (the real shell around a scripted runner, :mod:`tests.gpu_consumers.members`) gets a batch
that breaks while it is handled, batches it cannot run (another pool, another task type), a batch
that breaks the contract and undecodable bytes. Each one's tasks end as TaskFailed with a readable
reason, its record lands in the DLQ, its offset is committed, and a good batch after it completes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from confluent_kafka import Message

from ops.runtime.kafka import DurableProducer
from schemas.codec import Codec
from schemas.dlq import DeadLetter
from schemas.events import TaskCompleted, TaskFailed
from schemas.records import TaskType, Tier
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import POOL, EventReader, committed, make_batch, publish
from tests.gpu_consumers.members import running_member, when

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUP = "gpu-consumers.tiny.premium"


def produce_raw(bootstrap: str, catalog: TopicCatalog, value: bytes, key: bytes) -> tuple[int, int]:
    producer = DurableProducer(bootstrap)
    try:
        message = producer.produce_sync(catalog.batches(POOL, Tier.PREMIUM), value, key=key)
        return message.partition(), message.offset()
    finally:
        producer.close()


def letters(dlq: EventReader) -> list[tuple[DeadLetter, Message]]:
    return [(DeadLetter.from_headers(m.headers()), m) for m in dlq.raw]


def wait_committed(bootstrap: str, prefix: str, catalog: TopicCatalog, partition: int, offset: int) -> None:
    topic = catalog.batches(POOL, Tier.PREMIUM)
    when(
        lambda: committed(bootstrap, prefix + GROUP, topic, partition) > offset,
        30,
        f"offset {offset} of partition {partition} to be committed",
    )


def test_a_batch_that_breaks_while_handled_ends_and_the_next_batch_runs(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    events = EventReader(kafka_bootstrap, catalog.task_events, 3)
    dlq = EventReader(kafka_bootstrap, catalog.dlq, 3, decode=False)
    try:
        with running_member(kafka_bootstrap, topic_prefix, tmp_path) as member:
            member.runner.swap_ids_on_calls = {0}  # a runner bug: the first call labels outputs wrongly
            broken, good = make_batch(["a fox", "a cat"]), make_batch(["a dog"])
            broken_at = publish(kafka_bootstrap, catalog, broken)
            events.wait(lambda r: len(r.of(TaskFailed)) == 2, 30, "the broken batch's tasks to fail")
            good_at = publish(kafka_bootstrap, catalog, good)
            events.wait(lambda r: bool(r.of(TaskCompleted)), 30, "the next batch to complete")

            failed = events.of(TaskFailed)
            assert {f.task_id for f in failed} == {t.task_id for t in broken.tasks}
            for event in failed:
                assert event.error_class == "GpuConsumerError" and not event.retriable
                assert event.message.startswith(
                    f"batch {broken.batch_id} could not be processed: runner returned"
                )
            (completion,) = events.of(TaskCompleted)
            assert completion.task_id == good.tasks[0].task_id
            dlq.wait(lambda r: len(r.raw) == 1, 30, "the broken batch in the DLQ")
            ((letter, message),) = letters(dlq)
            assert (letter.origin_partition, letter.origin_offset) == broken_at
            assert letter.error_class == "gpu_consumers.exceptions.GpuConsumerError"
            assert message.value() == Codec().encode(broken)
            for partition, offset in (broken_at, good_at):
                wait_committed(kafka_bootstrap, topic_prefix, catalog, partition, offset)
            assert member.running  # never a crash loop: the member is still there
            assert (
                member.metrics.count("storee_gpu_batches_aborted_total", error_class="GpuConsumerError") == 1
            )
    finally:
        events.close()
        dlq.close()


def test_records_this_member_cannot_run_end_their_tasks_and_are_committed(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    events = EventReader(kafka_bootstrap, catalog.task_events, 3)
    dlq = EventReader(kafka_bootstrap, catalog.dlq, 3, decode=False)
    other_pool = dataclasses.replace(make_batch(["a fox", "a cat"]), pool="wan")
    audio = dataclasses.replace(make_batch(["a song"]), task_type=TaskType.TEXT_TO_AUDIO)
    good = make_batch(["a dog"])
    contract = make_batch(["ok", "bad"])
    # A decodable batch with an id that would climb out of the output directory.
    bad_task = dataclasses.replace(contract.tasks[1], task_id="../../escape")
    contract = dataclasses.replace(contract, tasks=(contract.tasks[0], bad_task))
    try:
        with running_member(kafka_bootstrap, topic_prefix, tmp_path) as member:
            sent: list[tuple[int, int]] = [
                publish(kafka_bootstrap, catalog, other_pool),
                publish(kafka_bootstrap, catalog, audio),
                produce_raw(kafka_bootstrap, catalog, Codec().encode(contract), b"contract"),
                produce_raw(kafka_bootstrap, catalog, b"\xc3\x01 not a batch", b"junk"),
                publish(kafka_bootstrap, catalog, good),
            ]
            events.wait(lambda r: bool(r.of(TaskCompleted)), 30, "the good batch to complete")
            events.wait(lambda r: len(r.of(TaskFailed)) == 4, 30, "every nameable bad task to fail")
            dlq.wait(lambda r: len(r.raw) == 4, 30, "four dead letters")

            events.read(0.5)
            by_task = {f.task_id: f for f in events.of(TaskFailed)}
            assert len(by_task) == 4 and bad_task.task_id not in by_task
            for task in other_pool.tasks:
                assert (
                    "batch for pool 'wan' arrived on a topic of pool 'tiny'" in by_task[task.task_id].message
                )
                assert by_task[task.task_id].error_class == "UnsupportedTask"
            assert by_task[audio.tasks[0].task_id].message == "pool 'tiny' does not run text_to_audio tasks"
            # The contract names the bad field; the well-formed task of that batch ends too, the
            # other cannot be named (its id breaks the contract) and only its batch is dead-lettered.
            ok = by_task[contract.tasks[0].task_id]
            assert ok.error_class == "ContractError" and "tasks[1].task_id" in ok.message
            classes = sorted(letter.error_class.rsplit(".", 1)[-1] for letter, _ in letters(dlq))
            assert classes == ["CodecError", "ContractError", "UnsupportedTask", "UnsupportedTask"]
            assert not (tmp_path / "escape").exists() and not list(tmp_path.rglob("escape*"))
            for partition, offset in sent:
                wait_committed(kafka_bootstrap, topic_prefix, catalog, partition, offset)
            assert member.runner.rendered() == [good.tasks[0].task_id]
            assert member.metrics.count("storee_gpu_records_refused_total", reason="pool") == 1
    finally:
        events.close()
        dlq.close()
