"""Identifiers and clocks for events: random event ids, deterministic task and batch ids.

Task and batch ids are derived from what they identify (RELIABILITY.md, promise 7), so a duplicate
anywhere carries the same id and every consumer can be idempotent.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable

BATCH_ID_PREFIX = "b-"
# The end-to-end probe's account (ops/lag/probe.py). Its stories take the real path through the
# splitter, batcher and GPU consumers, but the GPU consumers complete their tasks without rendering and
# the materializer keeps them out of the job view. The gateway never creates or authenticates this
# account, and the contract ties it to the story id prefix both ways, so every room can tell a probe from
# any event that names its story (task ids start with the story id too).
PROBE_ACCOUNT = "storee-probe"
PROBE_STORY_PREFIX = "storee-probe-"
# 96 bits: a collision needs about 2**48 batches, far beyond any topic's lifetime.
_BATCH_DIGEST_CHARS = 24


def new_event_id() -> str:
    """A random event id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def derived_event_id(kind: str, *parts: object) -> str:
    """An event id derived from what the event is about (a task and its attempt, a batch's task set, a
    story's completion): 32 lowercase hex digits like :func:`new_event_id`, the same for every duplicate."""
    text = "\x1f".join((kind, *(str(part) for part in parts)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def now_ms() -> int:
    """Milliseconds since the Unix epoch (UTC), the unit of every timestamp in the schemas."""
    return time.time_ns() // 1_000_000


def task_id(story_id: str, index: int) -> str:
    """The id of a story's task at scene ``index``: ``<story_id>:<index>``, readable and unique."""
    if not story_id:
        raise ValueError("story_id must not be empty")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    # The index is the text after the last ':', so different (story_id, index) pairs never collide.
    return f"{story_id}:{index}"


def is_probe_story(story_id: str) -> bool:
    """Whether ``story_id`` (or a task id, which starts with its story's) is the end-to-end probe's."""
    return story_id.startswith(PROBE_STORY_PREFIX)


def batch_id(task_ids: Iterable[str]) -> str:
    """The id of a batch of tasks: a short SHA-256 of the sorted task ids, independent of their order."""
    ordered = sorted(task_ids)
    if not ordered:
        raise ValueError("task_ids must not be empty")
    digest = hashlib.sha256("\n".join(ordered).encode("utf-8")).hexdigest()
    return BATCH_ID_PREFIX + digest[:_BATCH_DIGEST_CHARS]
