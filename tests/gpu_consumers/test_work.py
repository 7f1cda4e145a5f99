from __future__ import annotations

import threading

from gpu_consumers.scheduler import TierScheduler
from gpu_consumers.work import PendingBatch, WorkBuffer
from schemas.records import Tier
from tests.gpu_consumers.helpers import make_batch


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
