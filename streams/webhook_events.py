"""Which task events become webhooks: the request's filter, the progress throttle, and the JSON body.

A story's submitter picks webhook events from ``started``, ``progress`` and ``completed`` (default:
``completed`` only). From ``task.events``:

* ``started``: the story's first TaskStarted, once per run of the story.
* ``progress``: TaskProgress, and a task's own end (TaskCompleted, TaskFailed, TaskExpired), at most one
  per story per :data:`PROGRESS_INTERVAL_MS`. One that comes sooner is held, replacing any held before
  it (the latest wins); it goes when its window closes (:func:`release`) or just before ``completed``,
  so the last progress is never lost to the story's end.
* ``completed``: StoryCompleted, which the materializer emits once per run for every terminal story,
  completed, failed, expired or cancelled. StoryCancelled sends nothing by itself: the StoryCompleted
  that follows it says ``cancelled``, so a cancelled story gets one ``completed``, not two.

After ``completed``, events no later than it (by ``event_time``) are stale and dropped; a later one
starts a new run (a retried story). State is one :class:`StoryWebhooks` value per story, advanced by
:func:`observe`; times are milliseconds since the epoch, the unit of ``event_time``.

The body (:func:`payload`) is compact JSON with sorted keys, Standard Webhooks' shape::

    {"data": {"event": "TaskProgress", "progress": 0.5, "status": "running", "story_id": "s-1",
              "task": {"step": 10, "task_id": "s-1:0", "total_steps": 20}},
     "timestamp": "2023-11-14T22:13:20.000Z", "type": "story.progress"}

``type`` is ``story.started``, ``story.progress`` or ``story.completed``; ``timestamp`` is the event's
time; ``data.status`` is ``running``, or for ``completed`` one of ``completed``, ``failed``,
``cancelled``; ``data.progress`` is the story's fraction done when the caller knows it, else null;
``data.task`` names the task and what happened to it (null for ``completed``); ``data.result`` (only
for ``completed``) counts the tasks that completed, failed and expired, and the GPU seconds. Fields
are only ever added. The webhook id is ``msg_`` + the event id, the same on every retry (``started``:
derived from the story and its run, :func:`delivery_id`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass

from schemas.contract import retry_of
from schemas.events import (
    Event,
    StoryCancelled,
    StoryCompleted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskStarted,
)
from schemas.ids import derived_event_id
from schemas.webhooks import WebhookEvent

PROGRESS_INTERVAL_MS = 500
_PROGRESS_EVENTS = (TaskProgress, TaskCompleted, TaskFailed, TaskExpired)


def kind_of(event: Event) -> WebhookEvent | None:
    """The webhook event a task event can become, or ``None`` (StoryCancelled, and anything else)."""
    if isinstance(event, TaskStarted):
        return WebhookEvent.STARTED
    if isinstance(event, _PROGRESS_EVENTS):
        return WebhookEvent.PROGRESS
    if isinstance(event, StoryCompleted):
        return WebhookEvent.COMPLETED
    return None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A webhook to send: its kind, the event it is made of, and the story's status to report."""

    kind: WebhookEvent
    event: Event
    status: str


@dataclass(frozen=True, slots=True)
class StoryWebhooks:
    """One story's webhook state: the throttle window, the held progress, and where its run stands."""

    last_progress_ms: int | None = None  # when a progress last went out
    held: Event | None = None  # the latest progress waiting for its window
    started_sent: bool = False
    cancelled: bool = False
    closed_at: int | None = None  # event_time of the run's StoryCompleted; no later event yet

    def release_at(self, interval_ms: int = PROGRESS_INTERVAL_MS) -> int | None:
        """When the held progress may go, or ``None`` when nothing is held."""
        if self.held is None:
            return None
        return (self.last_progress_ms or 0) + interval_ms


def observe(
    state: StoryWebhooks,
    event: Event,
    wanted: frozenset[WebhookEvent],
    interval_ms: int = PROGRESS_INTERVAL_MS,
) -> tuple[StoryWebhooks, tuple[Outgoing, ...]]:
    """The story's next state after ``event``, and the webhooks to send now (in order)."""
    if state.closed_at is not None:
        if event.event_time <= state.closed_at:
            return state, ()  # late news of the run that ended, or a duplicate of its end
        state = StoryWebhooks()  # a new run of the story
    if isinstance(event, StoryCancelled):
        return dataclasses.replace(state, cancelled=True), ()
    if isinstance(event, StoryCompleted):
        out = []
        if state.held is not None and WebhookEvent.PROGRESS in wanted:
            out.append(Outgoing(WebhookEvent.PROGRESS, state.held, "running"))
        if WebhookEvent.COMPLETED in wanted:
            out.append(Outgoing(WebhookEvent.COMPLETED, event, _final_status(event, state.cancelled)))
        return StoryWebhooks(closed_at=event.event_time), tuple(out)
    kind = kind_of(event)
    if kind is WebhookEvent.STARTED:
        if state.started_sent or kind not in wanted:
            return state, ()
        return dataclasses.replace(state, started_sent=True), (Outgoing(kind, event, "running"),)
    if kind is WebhookEvent.PROGRESS and kind in wanted:
        last = state.last_progress_ms
        if last is None or event.event_time - last >= interval_ms:
            sent = dataclasses.replace(state, last_progress_ms=event.event_time, held=None)
            return sent, (Outgoing(kind, event, "running"),)
        return dataclasses.replace(state, held=event), ()  # coalesced: the latest replaces the held one
    return state, ()


def release(
    state: StoryWebhooks, now_ms: int, interval_ms: int = PROGRESS_INTERVAL_MS
) -> tuple[StoryWebhooks, tuple[Outgoing, ...]]:
    """Send the held progress if its window has closed by ``now_ms``."""
    due = state.release_at(interval_ms)
    if state.held is None or due is None or now_ms < due:
        return state, ()
    out = (Outgoing(WebhookEvent.PROGRESS, state.held, "running"),)
    return dataclasses.replace(state, held=None, last_progress_ms=now_ms), out


def webhook_id(event: Event) -> str:
    """The ``webhook-id``: stable across retries and redeliveries, as the event id is."""
    return f"msg_{event.event_id}"


def delivery_id(item: Outgoing) -> str:
    """The ``webhook-id`` of a webhook to send: the event's (:func:`webhook_id`), except for ``started``.

    A story's run starts once however many of its tasks start, and which TaskStarted comes first can
    differ after a restart replays the log; so ``started`` is named by the story and its run
    (:func:`schemas.contract.retry_of` of the attempt), and a replay can never send a second one.
    """
    event = item.event
    if item.kind is WebhookEvent.STARTED and isinstance(event, TaskStarted):
        return f"msg_{derived_event_id('webhook.started', event.story_id, retry_of(event.attempt))}"
    return webhook_id(event)


def payload(item: Outgoing, *, progress: float | None = None) -> bytes:
    """The webhook's body: compact JSON, sorted keys, the shape in the module docstring."""
    event = item.event
    if progress is None and item.kind is WebhookEvent.COMPLETED and item.status == "completed":
        progress = 1.0
    data: dict[str, object] = {
        "story_id": getattr(event, "story_id", None),
        "status": item.status,
        "progress": progress,
        "event": type(event).__name__,
        "task": _task(event),
    }
    if isinstance(event, StoryCompleted):
        data["result"] = {
            "tasks_completed": event.tasks_completed,
            "tasks_failed": event.tasks_failed,
            "tasks_expired": event.tasks_expired,
            "gpu_seconds": event.gpu_seconds,
        }
    body = {"type": f"story.{item.kind.value}", "timestamp": _iso(event.event_time), "data": data}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _final_status(event: StoryCompleted, cancelled: bool) -> str:
    if cancelled:
        return "cancelled"
    if event.tasks_failed or event.tasks_expired or not event.tasks_completed:
        return "failed"  # a story with no tasks at all failed too (it had no scenes)
    return "completed"


def _task(event: Event) -> dict[str, object] | None:
    if isinstance(event, TaskStarted):
        return {"task_id": event.task_id, "attempt": event.attempt}
    if isinstance(event, TaskProgress):
        return {"task_id": event.task_id, "step": event.step, "total_steps": event.total_steps}
    if isinstance(event, TaskCompleted):
        return {"task_id": event.task_id, "status": "completed", "outputs": _outputs(event)}
    if isinstance(event, TaskFailed):
        return {
            "task_id": event.task_id,
            "status": "failed",
            "error": {"class": event.error_class, "message": event.message, "retriable": event.retriable},
        }
    if isinstance(event, TaskExpired):
        return {"task_id": event.task_id, "status": "expired", "deadline": _iso(event.deadline)}
    return None


def _outputs(event: TaskCompleted) -> list[dict[str, object]]:
    return [{"uri": o.uri, "media_type": o.media_type} for o in event.outputs]


def _iso(ms: int) -> str:
    when = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
