from __future__ import annotations

import dataclasses
import threading

from gpu_consumers.scheduler import TierScheduler
from gpu_consumers.work import PendingBatch, Refusal, RejectedRecord, WorkBuffer, read_batch
from schemas.codec import Codec
from schemas.events import BatchReady, TaskRequested
from schemas.exceptions import CodecError, ContractError
from schemas.records import TaskType, Tier
from tests.gpu_consumers.helpers import POOL, make_batch


def item(tier: Tier, partition: int = 0, offset: int = 0) -> PendingBatch:
    return PendingBatch(
        make_batch(["x"], tier=tier), tier, f"batches.{tier.value}", partition, offset, None, b"", None
    )


def test_take_follows_the_scheduler_across_buffered_tiers() -> None:
    buffer = WorkBuffer(TierScheduler())
    for offset in range(4):
        buffer.put(item(Tier.PREMIUM, offset=offset))
        buffer.put(item(Tier.FREE, offset=offset))
    order = []
    for _ in range(4):
        taken = buffer.take()
        assert taken is not None and buffer.running is taken
        order.append(taken.tier)
        buffer.finished()
    assert order == [Tier.PREMIUM, Tier.PREMIUM, Tier.FREE, Tier.PREMIUM]
    assert not buffer.busy


def test_drop_removes_only_the_revoked_partitions() -> None:
    buffer = WorkBuffer(TierScheduler())
    keep, gone = item(Tier.FREE, partition=1), item(Tier.FREE, partition=2)
    buffer.put(keep)
    buffer.put(gone)
    assert buffer.drop([gone.source]) == [gone]
    assert buffer.buffered(Tier.FREE) == 1
    assert buffer.drop() == [keep]


def test_close_wakes_a_waiting_take() -> None:
    buffer = WorkBuffer(TierScheduler())
    result: list[object] = []
    taker = threading.Thread(target=lambda: result.append(buffer.take()))
    taker.start()
    buffer.close()
    taker.join(timeout=5)
    assert result == [None]


def test_take_times_out_when_nothing_is_buffered() -> None:
    assert WorkBuffer(TierScheduler()).take(timeout=0.01) is None


def rejected(tier: Tier, partition: int = 0, offset: int = 0) -> RejectedRecord:
    return RejectedRecord(
        tier,
        f"batches.{tier.value}",
        partition,
        offset,
        None,
        b"junk",
        None,
        CodecError("junk"),
        "undecodable",
    )


def test_rejected_records_go_first_and_count_as_buffered_for_their_tier() -> None:
    buffer = WorkBuffer(TierScheduler())
    batch, junk = item(Tier.PREMIUM), rejected(Tier.FREE, offset=1)
    buffer.put(batch)
    buffer.put(junk)
    assert buffer.buffered(Tier.FREE) == 1 and buffer.buffered(Tier.PREMIUM) == 1
    assert buffer.take() is junk
    buffer.finished()
    assert buffer.take() is batch
    buffer.put(rejected(Tier.FREE, partition=3))
    assert [r.partition for r in buffer.drop([("batches.free", 3)])] == [3]


def encoded(batch: BatchReady) -> bytes:
    return Codec().encode(batch)


def read(value: bytes, task_types: frozenset[TaskType] = frozenset({TaskType.TEXT_TO_VIDEO})) -> object:
    return read_batch(Codec(), value, topic="t.batches.tiny.free", pool=POOL, task_types=task_types)


def test_read_batch_returns_a_batch_this_member_runs() -> None:
    batch = make_batch(["a fox"])
    assert read(encoded(batch)) == batch


def test_read_batch_says_why_a_record_will_not_run_here() -> None:
    batch = make_batch(["a fox", "a cat"])
    undecodable = read(b"not avro")
    assert (
        isinstance(undecodable, Refusal) and undecodable.reason == "undecodable" and undecodable.batch is None
    )
    other_pool = read(encoded(dataclasses.replace(batch, pool="wan")))
    assert isinstance(other_pool, Refusal) and other_pool.reason == "pool" and other_pool.batch is not None
    assert "batch for pool 'wan' arrived on a topic of pool 'tiny'" in str(other_pool.error)
    audio = read(encoded(dataclasses.replace(batch, task_type=TaskType.TEXT_TO_AUDIO)))
    assert isinstance(audio, Refusal) and audio.reason == "task_type"
    assert str(audio.error) == "pool 'tiny' does not run text_to_audio tasks"
    # A decodable batch that breaks the contract still names its tasks, so they can end.
    bad = dataclasses.replace(
        batch, tasks=(dataclasses.replace(batch.tasks[0], task_id="../x"), batch.tasks[1])
    )
    contract = read(encoded(bad))
    assert isinstance(contract, Refusal) and contract.reason == "contract"
    assert isinstance(contract.error, ContractError) and contract.batch is not None
    task = batch.tasks[0]
    requested = TaskRequested(
        story_id=task.story_id,
        task_id=task.task_id,
        account_id="a",
        tier=Tier.FREE,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="m",
        scene_index=0,
        task_count=1,
        prompt="p",
        params=batch.params,
    )
    wrong = read(Codec().encode(requested))
    assert isinstance(wrong, Refusal) and wrong.reason == "wrong_event"
