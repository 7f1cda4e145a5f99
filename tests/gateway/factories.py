"""Job-view documents shaped as ``schemas/view.py`` describes: what the materializer would have written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ops.runtime.storage import LocalStore


def story_doc(story_id: str, account_id: str, **fields: Any) -> dict[str, Any]:
    doc = {
        "_id": story_id,
        "account_id": account_id,
        "tier": "premium",
        "title": None,
        "task_type": "text_to_video",
        "model": "default",
        "status": "queued",
        "error": None,
        "task_count": 1,
        "counts": {"queued": 1, "running": 0, "completed": 0, "failed": 0, "expired": 0, "cancelled": 0},
        "progress": 0.0,
        "submitted_at": 1_000,
        "started_at": None,
        "finished_at": None,
        "callback_url": None,
        "idempotency_key": None,
        "outputs": [],
        "updated_at": 1_000,
    }
    doc.update(fields)
    return doc


def task_doc(story_id: str, account_id: str, index: int, **fields: Any) -> dict[str, Any]:
    doc = {
        "_id": f"{story_id}:{index}",
        "story_id": story_id,
        "account_id": account_id,
        "tier": "premium",
        "pool": "default",
        "task_type": "text_to_video",
        "model": "default",
        "scene_index": index,
        "prompt": f"scene {index}",
        "status": "queued",
        "batch_id": None,
        "consumer_id": None,
        "attempt": 0,
        "step": 0,
        "total_steps": 0,
        "queued_at": 1_000 + index,
        "batched_at": None,
        "started_at": None,
        "finished_at": None,
        "deadline": None,
        "outputs": [],
        "error": None,
        "simulated": False,
        "updated_at": 1_000,
    }
    doc.update(fields)
    return doc


def clip(output_dir: Path, story_id: str, index: int, data: bytes) -> dict[str, Any]:
    """Store a fake clip as a GPU consumer would and return its output entry."""
    uri = LocalStore(output_dir).put_bytes(f"outputs/{story_id}/{story_id}:{index}.mp4", data)
    return {"uri": uri, "media_type": "video/mp4", "size_bytes": len(data)}
