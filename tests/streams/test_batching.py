from __future__ import annotations

from dataclasses import replace

from schemas.codec import Codec
from schemas.ids import batch_id
from schemas.records import TaskType, Tier
from streams.batching import BatchPolicy, Pending, add, confirm, drop_story, due, make_batch, signature
from streams.entries import decode_pending, encode_pending
from streams.expiry import expire, task_expired
from streams.splitting import split
from tests.streams.factories import POLICY, T0, params, story

SIZE4 = BatchPolicy(size=4, timeout_ms=5000)
CODEC = Codec()


def tasks(story_id: str = "s1", n: int = 3, **overrides):
    return split(story(story_id, n_scenes=n, **overrides), POLICY, now=T0)


def feed(pending, items, policy=SIZE4, start=0, now=T0):
    closed = []
    for offset, task in enumerate(items, start):
        pending, out = add(pending, task, offset=offset, now=now, policy=policy)
        closed += out
    return pending, closed


def test_a_batch_closes_at_size_with_a_deterministic_id_and_waits_in_the_outbox():
    items = tasks("s1", 3) + tasks("s2", 3)
    pending, closed = feed(Pending(), items)
    assert len(closed) == 1
    batch = closed[0]
    assert [t.task_id for t in batch.tasks] == ["s1:0", "s1:1", "s1:2", "s2:0"]
    assert batch.batch_id == batch_id(t.task_id for t in batch.tasks)
    assert batch.deadline == T0 + POLICY.task_ttl_ms and batch.pool == "default"
    assert batch.params.seed is None and batch.tasks[0].params.seed == 7
    assert [p.task.task_id for p in pending.tasks] == ["s2:1", "s2:2"]
    assert pending.outbox == (batch,)
    assert confirm(pending, batch.batch_id).outbox == ()


def test_a_partial_batch_closes_when_its_oldest_task_waited_the_timeout():
    pending, closed = feed(Pending(), tasks("s1", 2))
    assert closed == []
    assert due(pending, now=T0 + 4999, policy=SIZE4)[1] == []
    pending, closed = due(pending, now=T0 + 5000, policy=SIZE4)
    assert [t.task_id for t in closed[0].tasks] == ["s1:0", "s1:1"] and pending.tasks == ()
    assert due(pending, now=T0 + 99_999, policy=SIZE4)[1] == []  # nothing open, nothing closes


def test_cost_and_gpu_time_caps_close_a_batch_before_it_overflows():
    one = BatchPolicy().gpu_seconds(params())
    capped = BatchPolicy(size=8, max_gpu_seconds=one * 2.5)
    pending, closed = feed(Pending(), tasks("s1", 6), policy=capped)
    assert [len(b.tasks) for b in closed] == [2, 2] and len(pending.tasks) == 2
    by_cost = BatchPolicy(size=8, max_cost=capped.cost(params()) * 3)
    pending, closed = feed(Pending(), tasks("s1", 7), policy=by_cost)
    assert [len(b.tasks) for b in closed] == [3, 3] and len(pending.tasks) == 1


def test_signature_separates_incompatible_tasks():
    base = tasks("s1", 1)[0]
    same = replace(
        base, task_id="s1:9", prompt="other", params=replace(base.params, seed=1, negative_prompt="blur")
    )  # seeds and negative prompts are per task in one pipeline call
    assert signature(same) == signature(base)
    for different in (
        replace(base, tier=Tier.FREE),
        replace(base, model="other-pool"),
        replace(base, task_type=TaskType.IMAGE_TO_VIDEO),
        replace(base, params=replace(base.params, width=1280)),
        replace(base, params=replace(base.params, num_frames=49)),
        replace(base, params=replace(base.params, num_inference_steps=50)),
        replace(base, params=replace(base.params, guidance_scale=9.0)),  # one guidance per call
    ):
        assert signature(different) != signature(base)


def test_replayed_offsets_and_duplicate_tasks_are_ignored():
    items = tasks("s1", 3)
    pending, _ = feed(Pending(), items)
    again, closed = feed(pending, items)  # same offsets: a replay after a restart
    assert again == pending and closed == []
    dup, closed = feed(pending, items[:1], start=10)  # same task at a new offset: an upstream duplicate
    assert [p.task.task_id for p in dup.tasks] == ["s1:0", "s1:1", "s1:2"] and dup.offset == 10 and not closed


def test_cancelled_story_tasks_are_dropped():
    pending, _ = feed(Pending(), tasks("s1", 2) + tasks("s2", 1))
    pending, dropped = drop_story(pending, "s1")
    assert [t.task_id for t in dropped] == ["s1:0", "s1:1"]
    assert [p.task.task_id for p in pending.tasks] == ["s2:0"]


def test_expiry_removes_tasks_past_their_deadline():
    pending, _ = feed(Pending(), tasks("s1", 2))
    deadline = T0 + POLICY.task_ttl_ms
    assert expire(pending, deadline - 1)[1] == []
    pending, gone = expire(pending, deadline)
    assert [t.task_id for t in gone] == ["s1:0", "s1:1"] and pending.tasks == ()
    event = task_expired(gone[0], deadline + 5)
    assert event.deadline == deadline and event.event_id == task_expired(gone[0], deadline + 9).event_id


def test_pending_state_round_trips_through_the_table_encoding():
    pending, _ = feed(Pending(), tasks("s1", 3) + tasks("s2", 2))
    assert decode_pending(encode_pending(pending, CODEC), CODEC) == pending
    assert decode_pending(None, CODEC) == Pending()


def test_make_batch_takes_the_earliest_deadline():
    items = tasks("s1", 2)
    items[1] = replace(items[1], deadline=T0 + 10)
    assert make_batch(items, now=T0).deadline == T0 + 10
