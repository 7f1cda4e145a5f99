"""Webhook events: the filter, the progress throttle over recorded sequences, and the body's exact bytes."""

from __future__ import annotations

import json

import pytest

from schemas.events import (
    StoryCancelled,
    StoryCompleted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskStarted,
)
from schemas.records import OutputArtifact
from schemas.webhooks import DEFAULT_FILTER, InvalidEventFilter, WebhookEvent, parse_filter
from streams.webhook_events import (
    Outgoing,
    StoryWebhooks,
    kind_of,
    observe,
    payload,
    release,
    webhook_id,
)

STORY = "s-1"
T0 = 1_700_000_000_000
ALL = frozenset(WebhookEvent)
E = "0" * 32  # a fixed event id


def started(at: int, task: int = 0) -> TaskStarted:
    return TaskStarted(
        event_id=E, event_time=at, story_id=STORY, task_id=f"{STORY}:{task}", batch_id="b-1", consumer_id="c"
    )


def progress(at: int, step: int = 1, task: int = 0) -> TaskProgress:
    return TaskProgress(
        event_id=f"{step:032x}",
        event_time=at,
        story_id=STORY,
        task_id=f"{STORY}:{task}",
        batch_id="b-1",
        consumer_id="c",
        step=step,
        total_steps=20,
    )


def done(at: int, failed: int = 0, completed: int = 2) -> StoryCompleted:
    return StoryCompleted(
        event_id=E,
        event_time=at,
        story_id=STORY,
        account_id="a",
        tasks_completed=completed,
        tasks_failed=failed,
        tasks_expired=0,
        gpu_seconds=12.5,
    )


def run(events, wanted=ALL, state=None):
    """Feed a recorded sequence; return the final state and every webhook, as (kind, time)."""
    state, sent = state or StoryWebhooks(), []
    for event in events:
        state, out = observe(state, event, wanted)
        sent.extend(out)
    return state, sent


def kinds(sent: list[Outgoing]) -> list[tuple[str, int]]:
    return [(item.kind.value, item.event.event_time) for item in sent]


# -- the filter ---------------------------------------------------------------------------------------


def test_the_default_filter_is_completed_only() -> None:
    assert parse_filter(None) == DEFAULT_FILTER == {WebhookEvent.COMPLETED}


def test_a_filter_is_a_list_of_known_names() -> None:
    assert parse_filter(["started", "progress", "completed"]) == ALL
    assert parse_filter(["progress", "progress"]) == {WebhookEvent.PROGRESS}


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            ["completed", "output", "logs"],
            "unknown webhook events logs, output; choose from started, progress, completed",
        ),
        ([], "at least one of started, progress, completed"),
        ("completed", "a list of names"),
        ([1], "a list of names"),
    ],
)
def test_a_bad_filter_lists_what_is_wrong(names, message: str) -> None:
    with pytest.raises(InvalidEventFilter) as caught:
        parse_filter(names)
    assert str(caught.value) == message or message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_which_task_events_become_which_webhook_events() -> None:
    expired = TaskExpired(story_id=STORY, task_id=f"{STORY}:0", deadline=T0)
    failed = TaskFailed(
        story_id=STORY,
        task_id=f"{STORY}:0",
        consumer_id="c",
        error_class="E",
        message="m",
        attempt=0,
        retriable=False,
    )
    finished = TaskCompleted(
        story_id=STORY,
        task_id=f"{STORY}:0",
        batch_id="b",
        consumer_id="c",
        outputs=(),
        run_ms=1,
        gpu_seconds=1.0,
    )
    assert kind_of(started(T0)) is WebhookEvent.STARTED
    assert {kind_of(e) for e in (progress(T0), expired, failed, finished)} == {WebhookEvent.PROGRESS}
    assert kind_of(done(T0)) is WebhookEvent.COMPLETED
    assert kind_of(StoryCancelled(story_id=STORY, account_id="a")) is None


# -- the throttle, on recorded sequences ----------------------------------------------------------------


def test_progress_is_throttled_to_one_per_500_ms_and_the_latest_is_kept() -> None:
    events = [progress(T0 + ms, step) for step, ms in enumerate([0, 100, 200, 499, 500, 900, 950], 1)]
    state, sent = run(events)
    assert kinds(sent) == [("progress", T0), ("progress", T0 + 500)]
    assert state.held is not None and state.held.event_time == T0 + 950  # 900 was replaced by 950
    assert state.release_at() == T0 + 1000


def test_a_held_progress_goes_when_its_window_closes() -> None:
    state, _ = run([progress(T0, 1), progress(T0 + 100, 2)])
    assert release(state, T0 + 499) == (state, ())
    state, out = release(state, T0 + 500)
    assert [item.event.step for item in out] == [2]  # type: ignore[attr-defined]
    assert state.held is None and state.last_progress_ms == T0 + 500
    assert release(state, T0 + 10_000) == (state, ())  # nothing held, nothing sent
    state, sent = run([progress(T0 + 700, 3), progress(T0 + 1000, 4)], state=state)
    assert kinds(sent) == [("progress", T0 + 1000)]  # 700 was inside the released one's window


def test_the_last_progress_goes_out_before_completed() -> None:
    _, sent = run(
        [started(T0), progress(T0 + 10, 1), progress(T0 + 20, 2), progress(T0 + 30, 3), done(T0 + 40)]
    )
    assert kinds(sent) == [
        ("started", T0),
        ("progress", T0 + 10),
        ("progress", T0 + 30),
        ("completed", T0 + 40),
    ]


def test_only_the_filtered_events_are_sent() -> None:
    story = [started(T0), progress(T0 + 10), progress(T0 + 600), done(T0 + 700)]
    assert kinds(run(story, DEFAULT_FILTER)[1]) == [("completed", T0 + 700)]
    assert kinds(run(story, frozenset({WebhookEvent.STARTED}))[1]) == [("started", T0)]
    progress_only = run(
        [progress(T0), progress(T0 + 100), done(T0 + 200)], frozenset({WebhookEvent.PROGRESS})
    )
    assert kinds(progress_only[1]) == [("progress", T0), ("progress", T0 + 100)]


def test_started_is_sent_once_per_run() -> None:
    _, sent = run([started(T0, 0), started(T0 + 5, 1), started(T0 + 10, 0)])
    assert kinds(sent) == [("started", T0)]


def test_a_cancelled_story_gets_one_completed_that_says_cancelled() -> None:
    cancel = StoryCancelled(event_time=T0 + 50, story_id=STORY, account_id="a")
    _, sent = run([started(T0), cancel, done(T0 + 50, completed=0)])
    assert kinds(sent) == [("started", T0), ("completed", T0 + 50)]
    assert sent[-1].status == "cancelled"


@pytest.mark.parametrize(
    ("event", "status"),
    [(done(T0), "completed"), (done(T0, failed=1), "failed"), (done(T0, completed=0), "failed")],
)
def test_completed_reports_how_the_story_ended(event: StoryCompleted, status: str) -> None:
    assert run([event])[1][0].status == status


def test_after_completed_stale_events_are_dropped_and_a_later_run_starts_afresh() -> None:
    state, sent = run([started(T0), done(T0 + 100)])
    stale = [progress(T0 + 50), started(T0 + 90), done(T0 + 100)]  # a zombie's news, a duplicate end
    state, late = run(stale, state=state)
    assert late == [] and state.closed_at == T0 + 100
    state, retried = run([started(T0 + 5000), progress(T0 + 5100), done(T0 + 6000)], state=state)
    assert kinds(retried) == [("started", T0 + 5000), ("progress", T0 + 5100), ("completed", T0 + 6000)]


# -- the body -------------------------------------------------------------------------------------------


def test_the_body_is_stable_bytes() -> None:
    body = payload(Outgoing(WebhookEvent.PROGRESS, progress(T0, step=10), "running"), progress=0.5)
    assert body == (
        b'{"data":{"event":"TaskProgress","progress":0.5,"status":"running","story_id":"s-1",'
        b'"task":{"step":10,"task_id":"s-1:0","total_steps":20}},'
        b'"timestamp":"2023-11-14T22:13:20.000Z","type":"story.progress"}'
    )


def test_the_completed_body_carries_the_result() -> None:
    body = json.loads(payload(Outgoing(WebhookEvent.COMPLETED, done(T0 + 1), "completed")))
    assert body == {
        "type": "story.completed",
        "timestamp": "2023-11-14T22:13:20.001Z",
        "data": {
            "story_id": STORY,
            "status": "completed",
            "progress": 1.0,
            "event": "StoryCompleted",
            "task": None,
            "result": {"tasks_completed": 2, "tasks_failed": 0, "tasks_expired": 0, "gpu_seconds": 12.5},
        },
    }
    failed = json.loads(payload(Outgoing(WebhookEvent.COMPLETED, done(T0, failed=1), "failed")))
    assert failed["data"]["progress"] is None


def test_task_ends_describe_the_task() -> None:
    finished = TaskCompleted(
        story_id=STORY,
        task_id=f"{STORY}:1",
        batch_id="b",
        consumer_id="c",
        outputs=(OutputArtifact(uri="file:///o.mp4", media_type="video/mp4"),),
        run_ms=1,
        gpu_seconds=1.0,
    )
    failed = TaskFailed(
        story_id=STORY,
        task_id=f"{STORY}:1",
        consumer_id="c",
        error_class="OOM",
        message="m",
        attempt=1,
        retriable=True,
    )
    expired = TaskExpired(story_id=STORY, task_id=f"{STORY}:1", deadline=T0)
    tasks = [
        json.loads(payload(Outgoing(WebhookEvent.PROGRESS, e, "running")))["data"]["task"]
        for e in (finished, failed, expired)
    ]
    assert tasks == [
        {
            "task_id": "s-1:1",
            "status": "completed",
            "outputs": [{"uri": "file:///o.mp4", "media_type": "video/mp4"}],
        },
        {
            "task_id": "s-1:1",
            "status": "failed",
            "error": {"class": "OOM", "message": "m", "retriable": True},
        },
        {"task_id": "s-1:1", "status": "expired", "deadline": "2023-11-14T22:13:20.000Z"},
    ]


def test_the_webhook_id_is_the_event_id_and_holds_no_dot() -> None:
    assert webhook_id(started(T0)) == "msg_" + E
    assert "." not in webhook_id(StoryCancelled(story_id=STORY, account_id="a"))
