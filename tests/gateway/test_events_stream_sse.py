"""The progress stream's pure parts: SSE framing, event ids, the resume cursor, the timer, the partition
of a story, and the fan-out's dispatch (fed records by hand, no broker)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.partitioner import DefaultPartitioner

from gateway.exceptions import InvalidRequest
from gateway.live import Delivery, TaskEventFanOut
from gateway.sse import (
    Cursor,
    Position,
    StreamTimer,
    comment,
    event_data,
    event_name,
    frame,
    is_terminal,
    parse_event_id,
    story_partition,
)
from schemas.codec import Codec
from schemas.events import StoryCancelled, StoryCompleted, TaskCompleted, TaskProgress, TaskStarted
from schemas.records import OutputArtifact

CODEC = Codec()


def progress(step: int, story_id: str = "s1") -> TaskProgress:
    return TaskProgress(
        story_id=story_id, task_id=f"{story_id}:0", batch_id="b", consumer_id="c", step=step, total_steps=10
    )


def completed(story_id: str = "s1") -> StoryCompleted:
    return StoryCompleted(
        story_id=story_id, account_id="a", tasks_completed=1, tasks_failed=0, tasks_expired=0, gpu_seconds=1.5
    )


def test_an_event_is_one_frame_with_its_position_name_and_json_fields():
    event = progress(3)
    raw = frame(event_name(event), event_data(event), Position(4, 17)).decode()
    assert raw.endswith("\n\n") and raw.count("\n") == 4
    lines = raw.strip().split("\n")
    assert lines[:2] == ["id: 4-17", "event: task.progress"]
    data = json.loads(lines[2].removeprefix("data: "))
    assert data["type"] == "TaskProgress" and data["step"] == 3 and data["total_steps"] == 10
    assert data["event_id"] == event.event_id and data["story_id"] == "s1"
    assert comment("keep-alive") == b": keep-alive\n\n"


def test_every_task_event_type_has_its_name_and_only_story_completed_ends_the_stream():
    output = OutputArtifact(uri="file:///x.mp4", media_type="video/mp4", size_bytes=1, duration_s=1.0)
    done = TaskCompleted(
        story_id="s1",
        task_id="s1:0",
        batch_id="b",
        consumer_id="c",
        outputs=(output,),
        run_ms=5,
        gpu_seconds=1.0,
    )
    started = TaskStarted(story_id="s1", task_id="s1:0", batch_id="b", consumer_id="c")
    cancelled = StoryCancelled(story_id="s1", account_id="a")
    assert [event_name(e) for e in (started, progress(1), done, cancelled, completed())] == [
        "task.started",
        "task.progress",
        "task.completed",
        "story.cancelled",
        "story.completed",
    ]
    assert event_data(done)["outputs"][0]["media_type"] == "video/mp4"  # records become JSON objects
    assert json.loads(frame("x", event_data(done)).decode().split("data: ")[1])  # and serialise
    assert [is_terminal(e) for e in (started, cancelled, completed())] == [False, False, True]


@pytest.mark.parametrize("raw", ["", "  ", None])
def test_no_last_event_id_means_a_fresh_stream(raw):
    assert parse_event_id(raw, partition=3) is None


def test_a_last_event_id_names_a_position_of_the_storys_partition():
    assert parse_event_id("3-41", partition=3) == Position(3, 41)
    assert parse_event_id("3--1", partition=3) == Position(3, -1)  # a snapshot taken on an empty partition
    for bad in ("3", "x-1", "3-", "3-1-2", "-1-4", "3-999999999999999999999"):
        with pytest.raises(InvalidRequest, match="Last-Event-ID must be") as caught:
            parse_event_id(bad, partition=3)
        assert caught.value.field == "Last-Event-ID"
    with pytest.raises(InvalidRequest, match="not from this story's stream"):
        parse_event_id("2-41", partition=3)


def test_the_cursor_admits_each_offset_once_so_replay_and_live_never_repeat():
    cursor = Cursor(partition=0, last=9)
    replayed = [10, 12, 15]
    live = [14, 15, 16, 18]  # the live part began at 14: 14 and 15 were also read back
    sent = [o for o in replayed + live if cursor.admit(Position(0, o))]
    assert sent == [10, 12, 15, 16, 18]
    assert not cursor.admit(Position(0, 9)) and not cursor.admit(Position(1, 30))


def test_the_timer_sends_keep_alives_and_ends_idle_or_long_streams():
    timer = StreamTimer(keepalive_s=15, idle_timeout_s=60, max_duration_s=100, opened_at=0.0)
    assert timer.next(now=0.0, last_event_at=0.0) == (15, None)
    assert timer.next(now=50.0, last_event_at=0.0) == (10, None)  # the idle end comes before the next ping
    wait, reason = timer.next(now=60.0, last_event_at=0.0)
    assert wait == 0 and reason == "no event for 60s"
    assert timer.next(now=95.0, last_event_at=90.0) == (5, None)
    assert timer.next(now=100.0, last_event_at=99.0)[1] == "the stream reached its maximum duration of 100s"


def test_a_story_maps_to_the_partition_kafkas_default_partitioner_gives_its_key():
    java = DefaultPartitioner()
    for partitions in (1, 3, 12):
        every = list(range(partitions))
        for i in range(300):
            story_id = f"story-{i}" + "x" * (i % 7)
            assert story_partition(story_id, partitions) == java(story_id.encode(), every, every)


def _record(partition: int, offset: int, event) -> tuple[int, int, bytes, bytes]:
    return (partition, offset, event.story_id.encode(), CODEC.encode(event))


def test_the_fan_out_splits_a_partition_at_a_subscriptions_start_and_dispatches_by_story():
    async def run() -> None:
        fan_out = TaskEventFanOut("unused:1", "t.task.events", queue_size=10, codec=CODEC)
        assert not fan_out.ready
        fan_out._assigned({0: 5})
        fan_out._dispatch([_record(0, 5, progress(1)), _record(0, 6, progress(1, "other"))])
        mine = fan_out.subscribe("s1", "acct")
        assert (mine.partition, mine.start, str(mine.seen)) == (0, 7, "0-6")
        assert fan_out.open_streams("acct") == 1
        fan_out._dispatch(
            [_record(0, 7, progress(2)), _record(0, 8, progress(2, "other")), _record(0, 9, completed())]
        )
        got: list[Delivery | None] = [mine.queue.get_nowait() for _ in range(mine.queue.qsize())]
        assert [(d.position.offset, type(d.event).__name__) for d in got if d] == [
            (7, "TaskProgress"),
            (9, "StoryCompleted"),
        ]
        fan_out.unsubscribe(mine)
        fan_out.unsubscribe(mine)  # twice is harmless
        assert fan_out.open_streams("acct") == 0

    asyncio.run(run())


def test_a_stream_that_falls_behind_is_ended_not_thinned():
    async def run() -> None:
        fan_out = TaskEventFanOut("unused:1", "t.task.events", queue_size=2, codec=CODEC)
        fan_out._assigned({0: 0})
        slow = fan_out.subscribe("s1", "acct")
        fan_out._dispatch([_record(0, offset, progress(offset)) for offset in range(5)])
        queued = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        assert [d.position.offset if d else None for d in queued] == [0, 1, None]  # then: reconnect
        assert slow.ended

    asyncio.run(run())


def test_a_bad_record_of_a_watched_story_is_skipped():
    async def run() -> None:
        fan_out = TaskEventFanOut("unused:1", "t.task.events", queue_size=5, codec=CODEC)
        fan_out._assigned({0: 0})
        watching = fan_out.subscribe("s1", "acct")
        fan_out._dispatch([(0, 0, b"s1", b"not avro"), _record(0, 1, progress(1))])
        assert watching.queue.get_nowait().position.offset == 1  # type: ignore[union-attr]

    asyncio.run(run())
