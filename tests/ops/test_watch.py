"""``storee watch``'s pure parts: reading an event stream, resuming it, and one line per event."""

from __future__ import annotations

import httpx

from ops.client import ClientSettings, StoreeClient, StreamEvent, parse_sse
from ops.client_commands import event_line
from ops.runtime.config import Secret

STREAM = (
    "retry: 2000\n\n"
    'id: 0-4\nevent: snapshot\ndata: {"status": "running", "progress": 0.5, "task_count": 2}\n\n'
    ": keep-alive\n\n"
    'id: 0-7\nevent: task.progress\ndata: {"task_id": "s:0", "step": 3, "total_steps": 10}\n\n'
)


def test_events_are_read_from_the_stream_with_comments_and_retry_ignored():
    events = list(parse_sse(STREAM.split("\n")))
    assert events == [
        StreamEvent("snapshot", {"status": "running", "progress": 0.5, "task_count": 2}, "0-4"),
        StreamEvent("task.progress", {"task_id": "s:0", "step": 3, "total_steps": 10}, "0-7"),
    ]
    assert not events[0].ends_story
    assert StreamEvent("snapshot", {"status": "failed"}).ends_story
    assert StreamEvent("story.completed", {}).ends_story


def test_a_stream_ended_early_is_reopened_after_the_last_event_seen():
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("last-event-id"))
        if len(asked) == 1:  # the gateway ends the first stream early (idle, too long, reader too slow)
            return httpx.Response(200, text=STREAM + ": closing: no event for 600s\n\n")
        body = 'id: 0-9\nevent: story.completed\ndata: {"tasks_completed": 2}\n\n'
        body += "id: 0-10\nevent: x\ndata: {}\n\n"
        return httpx.Response(200, text=body)

    client = StoreeClient(ClientSettings("http://gateway", Secret("k")))
    client._http = httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(answer))
    names = [event.name for event in client.events("s")]
    assert names == ["snapshot", "task.progress", "story.completed"]  # nothing read past the end
    assert asked == [None, "0-7"]


def test_a_resume_after_the_end_is_answered_204_and_ends_quietly():
    client = StoreeClient(ClientSettings("http://gateway", Secret("k")))
    client._http = httpx.Client(
        base_url="http://gateway", transport=httpx.MockTransport(lambda r: httpx.Response(204))
    )
    assert list(client.events("s", last_event_id="0-9")) == []


def test_each_event_is_one_line_for_a_person():
    assert event_line(StreamEvent("snapshot", {"status": "running", "progress": 0.5, "task_count": 2})) == (
        "snapshot        running 50% (2 tasks)"
    )
    progress = StreamEvent("task.progress", {"task_id": "s:0", "step": 3, "total_steps": 10})
    assert event_line(progress) == "task.progress   s:0 step 3/10"
    failed = {"task_id": "s:1", "error_class": "OOM", "message": "out of memory", "retriable": True}
    assert (
        event_line(StreamEvent("task.failed", failed))
        == "task.failed     s:1 OOM: out of memory (will retry)"
    )
    ended = {"tasks_completed": 1, "tasks_failed": 1, "tasks_expired": 0}
    assert (
        event_line(StreamEvent("story.completed", ended))
        == "story.completed completed 1, failed 1, expired 0"
    )
