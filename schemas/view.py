"""The job view's shape: the MongoDB documents the materializer writes and the gateway reads.

Only ``streams/`` writes the stories and tasks collections (idempotent upserts ordered by each
event's ``(event_time, sequence)``); the gateway only reads them. Times are milliseconds since the
Unix epoch (UTC), as in the events.

``stories`` (``_id`` = story_id)::

    account_id, tier, title, task_type, model (the pool), status (StoryStatus), error {code, message}|None,
    task_count, counts {queued, running, completed, failed, expired, cancelled}, progress (0.0-1.0),
    submitted_at, started_at|None, finished_at|None, callback_url|None, webhook_events [str],
    idempotency_key|None,
    outputs [ {task_id, scene_index, uri, media_type} ] (completed clips, by scene index),
    retry (the latest run: 0, or N after the Nth POST /v1/stories/{id}/retry),
    attempts [ {retry, requested_at, tasks, ended_at|None, tasks_completed|None, tasks_failed|None,
               tasks_expired|None} ] (one per run, oldest first; the counts once that run ended)

``tasks`` (``_id`` = task_id)::

    story_id, account_id, tier, pool, task_type, model, scene_index, prompt, status (TaskStatus),
    batch_id|None, consumer_id|None, attempt, step, total_steps,
    queued_at, batched_at|None, started_at|None, finished_at|None, deadline|None,
    outputs [ {uri, media_type, ...} ], error {error_class, message, retriable}|None, simulated (bool),
    params (the GenerationParams record), input (the MediaRef record)|None: what a retry requests again

``webhook_deliveries`` (``_id`` = the webhook id, ``msg_<event id>``; written only by the webhook
delivery service, read by the gateway for a story's ``webhook`` status)::

    story_id, account_id, kind (started|progress|completed), url, body (the JSON sent, as a string),
    status (WebhookStatus), attempts, next_at|None, lease_until|None, last_status|None (HTTP status),
    last_error|None, created_at, updated_at, delivered_at|None

``webhook_secrets`` (``_id`` = account_id; written by the accounts commands, read by the delivery
service to sign)::

    secrets [ {secret ("whsec_..."), created_at, retires_at|None} ] (newest first; a rotated-out secret
    signs beside the new one until ``retires_at``)

Both kinds also carry ``updated_at`` and the bookkeeping the materializer needs for ordering (field
names starting with ``_``), which readers ignore.
"""

from __future__ import annotations

from enum import StrEnum

STORIES = "stories"
TASKS = "tasks"
ACCOUNTS = "accounts"
WEBHOOK_DELIVERIES = "webhook_deliveries"
WEBHOOK_SECRETS = "webhook_secrets"
API_KEYS = "api_keys"


class StoryStatus(StrEnum):
    QUEUED = "queued"  # accepted, no task started yet
    RUNNING = "running"  # at least one task started, not all terminal
    COMPLETED = "completed"  # every task completed
    FAILED = "failed"  # every task terminal, at least one failed or expired (or the story had no scenes)
    CANCELLED = "cancelled"  # cancelled by its owner; finished clips stay


class TaskStatus(StrEnum):
    QUEUED = "queued"  # requested, waiting to be batched
    BATCHED = "batched"  # in a BatchReady, waiting for a GPU consumer
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"  # not started before its deadline
    CANCELLED = "cancelled"


class WebhookStatus(StrEnum):
    PENDING = "pending"  # due, not tried yet
    DELIVERED = "delivered"  # a 2xx answer
    FAILING = "failing"  # tried and failed; another try is scheduled
    FAILED = "failed"  # the last try failed (or 410 Gone): in the DLQ with its reason
    SKIPPED = "skipped"  # not sent: the story's filter does not ask for it, or it has no URL


TERMINAL_TASK_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.EXPIRED, TaskStatus.CANCELLED}
)
TERMINAL_STORY_STATUSES = frozenset({StoryStatus.COMPLETED, StoryStatus.FAILED, StoryStatus.CANCELLED})
