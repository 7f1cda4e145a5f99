"""Deterministic event ids for the events the stream processors derive from other events.

Replaying a topic makes the processors emit the same events again; with ids derived from what an
event is about (a task and its attempt, a batch's task set, a story's completion), every duplicate
carries the id of the original and consumers deduplicate on it (DESIGN.md, "Guarantees").
"""

from __future__ import annotations

import hashlib


def derived_event_id(kind: str, *parts: object) -> str:
    """32 lowercase hex digits, like :func:`schemas.ids.new_event_id`, from ``kind`` and ``parts``."""
    text = "\x1f".join((kind, *(str(part) for part in parts)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
