"""One bad record never costs another: the splitter's and batcher's shells, record by record.

The shells are driven through their two small ports (an outlet and a state table) by in-memory stand-ins
that record what was sent, so every failure path runs without a broker; the poison test in tests/e2e runs
the same paths against the real one.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import Any

from schemas.codec import Codec
from schemas.contract import check
from schemas.dlq import ERROR_MESSAGE
from schemas.events import BatchReady, StorySubmitted, TaskFailed, TaskRequested
from schemas.topics import TopicCatalog
from streams.batch_agent import Batcher
from streams.batching import BatchPolicy, signature
from streams.metrics import StreamMetrics
from streams.split_agent import Splitter
from streams.splitting import split
from tests.streams.factories import POLICY, T0, params, story

CODEC = Codec()
CATALOG = TopicCatalog.build(prefix="t.")


@dataclasses.dataclass
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)
    tp: Any = None


class Outlet:
    """Records what the shell sends; ``refuse(topic, key)`` makes such sends raise."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.refusing: set[tuple[str, bytes | None]] = set()

    def send(self, topic: str, *, key: bytes | None, value: bytes | None, headers: Any = None) -> Future:
        if (topic, key) in self.refusing:
            raise RuntimeError(f"refused {topic} {key!r}")
        self.sent.append((topic, key, value, headers))
        done: Future = Future()
        done.set_result(None)
        return done

    def events(self, topic: str) -> list[Any]:
        return [CODEC.decode(value) for t, _, value, _ in self.sent if t == topic and value]

    def dead_letters(self) -> list[dict[str, bytes]]:
        return [dict(headers) for t, _, _, headers in self.sent if t == CATALOG.dlq]


class Table:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def send_changelog(self, partition: int | None, key: Any, value: Any) -> Future:
        done: Future = Future()
        done.set_result(None)
        return done


def _splitter(outlet: Outlet) -> Splitter:
    return Splitter(policy=POLICY, catalog=CATALOG, codec=CODEC, outlet=outlet, metrics=StreamMetrics())


def _stories(*stories: StorySubmitted | bytes) -> list[Message]:
    values = [s if isinstance(s, bytes) else CODEC.encode(s) for s in stories]
    return [Message(CATALOG.stories_submitted, 0, i, value) for i, value in enumerate(values)]


def test_splitter_dead_letters_bad_records_and_splits_every_other_one():
    outlet = Outlet()
    good = [story("good-1"), story("good-2", n_scenes=2)]
    bad = [
        story(""),  # empty id: the contract's
        story("huge", sequence=2**63 - 1),  # sequence + 1 would not encode
        story("nan", params=params(guidance_scale=float("nan"))),
        b"\xc3\x01 not an event",
    ]
    _splitter(outlet).handle(_stories(good[0], *bad, good[1]))
    tasks = outlet.events(CATALOG.tasks_requested)
    assert sorted(t.task_id for t in tasks) == ["good-1:0", "good-1:1", "good-1:2", "good-2:0", "good-2:1"]
    letters = outlet.dead_letters()
    assert len(letters) == len(bad)
    reasons = [letter[ERROR_MESSAGE].decode() for letter in letters]
    assert "story_id" in reasons[0] and "sequence" in reasons[1] and "params.guidance_scale" in reasons[2]


def test_a_story_that_fails_while_splitting_fails_its_tasks_and_the_next_story_still_splits():
    outlet = Outlet()
    outlet.refusing.add((CATALOG.tasks_requested, b"broken"))
    _splitter(outlet).handle(_stories(story("broken", n_scenes=2), story("after")))
    assert sorted(t.task_id for t in outlet.events(CATALOG.tasks_requested)) == [
        "after:0",
        "after:1",
        "after:2",
    ]
    failed = outlet.events(CATALOG.task_events)
    assert [(e.task_id, e.retriable) for e in failed] == [("broken:0", False), ("broken:1", False)]
    assert all(isinstance(e, TaskFailed) and "refused" in e.message for e in failed)
    assert len(outlet.dead_letters()) == 1


def test_the_story_deadline_is_start_within_capped_by_max_task_ttl():
    policy = dataclasses.replace(POLICY, max_task_ttl_ms=3_600_000)
    assert split(story("s"), policy)[0].deadline == T0 + POLICY.task_ttl_ms
    assert split(story("s", deadline=T0 + 60_000), policy)[0].deadline == T0 + 60_000
    assert split(story("s", deadline=T0 + 10 * 3_600_000), policy)[0].deadline == T0 + 3_600_000


def _batcher(outlet: Outlet, codec: Codec = CODEC) -> Batcher:
    return Batcher(
        policy=BatchPolicy(size=2, timeout_ms=5_000),
        catalog=CATALOG,
        codec=codec,
        outlet=outlet,
        pending=Table(),
        cancelled=Table(),
        metrics=StreamMetrics(),
        active_partitions=lambda: {0},
        clock=lambda: T0,
    )


def _tasks(*values: TaskRequested | bytes) -> list[Message]:
    encoded = [v if isinstance(v, bytes) else CODEC.encode(v) for v in values]
    return [Message(CATALOG.tasks_requested, 0, i, value) for i, value in enumerate(encoded)]


def _task(story_id: str, index: int = 0, **changes: Any) -> TaskRequested:
    task = split(story(story_id, n_scenes=index + 1), POLICY, now=T0)[index]
    return dataclasses.replace(task, **changes)


def test_batcher_fails_nameable_bad_tasks_and_batches_the_rest():
    outlet = Outlet()
    bad_guidance = _task("bad", params=params(guidance_scale=float("inf")))
    bad_pool = _task("pool", model="no-such-pool")
    _batcher(outlet).handle(_tasks(_task("a"), bad_guidance, b"garbage", bad_pool, _task("b")))
    (batch,) = outlet.events(CATALOG.batches("default", "premium"))
    assert isinstance(batch, BatchReady) and [t.task_id for t in batch.tasks] == ["a:0", "b:0"]
    failed = {e.task_id: e for e in outlet.events(CATALOG.task_events)}
    assert set(failed) == {"bad:0", "pool:0"}
    assert "guidance_scale" in failed["bad:0"].message and "no-such-pool" in failed["pool:0"].message
    assert len(outlet.dead_letters()) == 3


def test_a_batch_whose_send_raised_stays_in_the_outbox_and_the_timer_sends_it():
    outlet = Outlet()
    topic = CATALOG.batches("default", "premium")
    batcher = _batcher(outlet)
    first, second = _task("a"), _task("b")
    outlet.refusing.add((topic, signature(first).encode()))
    batcher.handle(_tasks(first, second))
    assert outlet.events(topic) == []
    outlet.refusing.clear()
    batcher.tick()
    (batch,) = outlet.events(topic)
    assert [t.task_id for t in batch.tasks] == ["a:0", "b:0"]


def test_a_task_refused_for_its_own_sequence_still_gets_a_failure_the_view_accepts():
    outlet = Outlet()
    _batcher(outlet).handle(_tasks(_task("huge", sequence=2**63 - 1, attempt=500)))
    (failed,) = outlet.events(CATALOG.task_events)
    assert failed.task_id == "huge:0" and "attempt: 500" in failed.message
    assert check(failed) is failed  # the materializer's contract check takes it
