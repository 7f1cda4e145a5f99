"""Deterministic event ids for the events the stream processors derive from other events.

Replaying a topic makes the processors emit the same events again; with ids derived from what an
event is about (a task and its attempt, a batch's task set, a story's completion), every duplicate
carries the id of the original and consumers deduplicate on it (DESIGN.md, "Guarantees"). The function
lives in :mod:`schemas.ids`, so the gateway derives the ids of the events it publishes the same way.
"""

from __future__ import annotations

from schemas.ids import derived_event_id

__all__ = ["derived_event_id"]
