"""What the read endpoints answer: job-view documents turned into the API's JSON, with links.

Pure functions over the documents of ``schemas/view.py``; times stay milliseconds since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from schemas.view import WebhookStatus
from schemas.webhooks import DEFAULT_FILTER, WebhookEvent

# A story's webhook status is the first of these that any of its deliveries has.
WEBHOOK_STATUS_ORDER = (
    WebhookStatus.FAILED,
    WebhookStatus.FAILING,
    WebhookStatus.PENDING,
    WebhookStatus.DELIVERED,
)


def story_links(story_id: str) -> dict[str, str]:
    base = f"/v1/stories/{quote(story_id, safe=':')}"
    return {"self": base, "result": f"{base}/result", "cancel": f"{base}/cancel", "retry": f"{base}/retry"}


def task_links(task_id: str, outputs: int) -> dict[str, Any]:
    base = f"/v1/tasks/{quote(task_id, safe=':')}"
    return {"self": base, "result": f"{base}/result" if outputs else None}


def story_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """One story in a list: status and progress, without its tasks."""
    return {
        "story_id": doc["_id"],
        "status": doc.get("status"),
        "title": doc.get("title"),
        "task_type": doc.get("task_type"),
        "model": doc.get("model"),
        "tier": doc.get("tier"),
        "task_count": doc.get("task_count"),
        "progress": doc.get("progress", 0.0),
        "counts": doc.get("counts") or {},
        "timings": {
            "submitted_at": doc.get("submitted_at"),
            "started_at": doc.get("started_at"),
            "finished_at": doc.get("finished_at"),
        },
        "error": doc.get("error"),
        "links": story_links(doc["_id"]),
    }


def story_body(
    doc: dict[str, Any],
    tasks: list[dict[str, Any]],
    queue_position: int | None,
    deliveries: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A story with every task's state, its queue position and its output links.

    Given its webhook deliveries (``deliveries`` not ``None``), also ``webhook`` (:func:`webhook_body`).
    """
    body = story_summary(doc)
    body["queue_position"] = queue_position
    body["retry"] = doc.get("retry", 0)
    body["attempts"] = doc.get("attempts") or []
    body["tasks"] = [task_body(task, None, brief=True) for task in tasks]
    body["outputs"] = [
        {
            "task_id": output.get("task_id"),
            "scene_index": output.get("scene_index"),
            "media_type": output.get("media_type"),
            "url": task_links(str(output.get("task_id")), 1)["result"],
        }
        for output in doc.get("outputs") or []
    ]
    if deliveries is not None:
        body["webhook"] = webhook_body(doc, deliveries)
    return body


def webhook_body(doc: dict[str, Any], deliveries: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The story's webhook: its URL, event filter and where its deliveries stand; ``None`` without a URL.

    ``status`` is ``failed`` if any delivery failed, else ``failing``, ``pending``, ``delivered`` in that
    order, and ``pending`` before there is any delivery. Deliveries skipped (the filter did not ask for
    them) count for nothing.
    """
    url = doc.get("callback_url")
    if not url:
        return None
    counted = [d for d in deliveries if d.get("status") != WebhookStatus.SKIPPED]
    present = {d.get("status") for d in counted}
    status = next((s for s in WEBHOOK_STATUS_ORDER if s.value in present), WebhookStatus.PENDING)
    attempted = [d for d in counted if d.get("attempts")]
    latest = max(attempted, key=_attempted_at, default=None)
    errored = [d for d in attempted if d.get("last_error")]
    chosen = set(doc.get("webhook_events") or DEFAULT_FILTER)
    return {
        "url": url,
        "events": [event.value for event in WebhookEvent if event.value in chosen],
        "status": status.value,
        "deliveries": len(counted),
        "last_error": max(errored, key=_attempted_at)["last_error"] if errored else None,
        "last_attempt_at": _attempted_at(latest) if latest is not None else None,
    }


def _attempted_at(delivery: dict[str, Any]) -> int:
    # A delivery's record changes last when an attempt is settled; a claim only sets its lease.
    return int(delivery.get("last_attempt_at") or delivery.get("updated_at") or 0)


def task_body(doc: dict[str, Any], queue_position: int | None, *, brief: bool = False) -> dict[str, Any]:
    outputs = doc.get("outputs") or []
    total = doc.get("total_steps") or 0
    body: dict[str, Any] = {
        "task_id": doc["_id"],
        "story_id": doc.get("story_id"),
        "scene_index": doc.get("scene_index"),
        "status": doc.get("status"),
        "progress": round(min(1.0, (doc.get("step") or 0) / total), 4) if total else 0.0,
        "timings": {
            "queued_at": doc.get("queued_at"),
            "batched_at": doc.get("batched_at"),
            "started_at": doc.get("started_at"),
            "finished_at": doc.get("finished_at"),
        },
        "outputs": [
            {
                "media_type": output.get("media_type"),
                "duration_s": output.get("duration_s"),
                "size_bytes": output.get("size_bytes"),
                "url": f"{task_links(doc['_id'], 1)['result']}?index={index}",
            }
            for index, output in enumerate(outputs)
        ],
        "error": doc.get("error"),
        "links": task_links(doc["_id"], len(outputs)),
    }
    if not brief:
        body.update(
            pool=doc.get("pool"),
            tier=doc.get("tier"),
            task_type=doc.get("task_type"),
            model=doc.get("model"),
            attempt=doc.get("attempt", 0),
            deadline=doc.get("deadline"),
            queue_position=queue_position,
        )
    return body
