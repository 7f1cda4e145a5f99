"""Batch facts a rebuild cannot recover: the ``rebuild=recent`` topics past their retention (pure).

The view is rebuilt from every retained record of its topics (``schemas.topics``: ``rebuild`` roles).
Stories, tasks and task events are kept forever; the batches (``batches.<pool>.<tier>``) only 7 days,
and they alone say when and in which batch a task waited (``batched_at``, the batch choice, and the
``batch_id`` / ``consumer_id`` of a task that never started). A rebuild whose batch records are gone
rebuilds those tasks without them, so the live view and the rebuild differ in exactly those fields.

:func:`batch_gaps` decides from what the shell read (:mod:`ops.view.shadow`), with two rules:

* **deleted**: a batches partition whose log start is past 0: retention deleted its oldest records;
* **older stories**: ``stories.submitted`` holds stories submitted before now minus the batches'
  retention: their batch records are past retention (deleted, or due to be with the next segment).

Either one means "gaps": ``storee view rebuild`` then refuses without ``--accept-batch-gaps``, saying
what would differ; with it, the verify step counts those differences as expected (``batch facts past
retention``) and the swap goes ahead when nothing else differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ops.view.digest import BATCH_GAP_FIELDS

FLAG = "--accept-batch-gaps"


@dataclass(frozen=True, slots=True)
class BatchLog:
    """One batches partition as read: its log start and end offsets."""

    topic: str
    partition: int
    log_start: int
    log_end: int


@dataclass(frozen=True, slots=True)
class BatchGaps:
    """Which batch records a rebuild misses: partitions whose start moved, stories older than kept."""

    deleted: tuple[BatchLog, ...]
    older_stories: int  # stories.submitted records older than the cutoff (0: none)
    cutoff_ms: int  # now minus the shortest batches retention
    retention_ms: int

    @property
    def any(self) -> bool:
        return bool(self.deleted) or self.older_stories > 0

    def describe(self) -> str:
        """What is missing and what it changes, in one paragraph."""
        found = []
        if self.deleted:
            parts = ", ".join(f"{b.topic}[{b.partition}] starts at {b.log_start}" for b in self.deleted)
            found.append(f"retention deleted the oldest batch records ({parts})")
        if self.older_stories:
            found.append(
                f"{self.older_stories} stor{'y was' if self.older_stories == 1 else 'ies were'} submitted "
                f"before {_iso(self.cutoff_ms)}, longer ago than batches.* keep ({_days(self.retention_ms)})"
            )
        fields = ", ".join(sorted(f for f in BATCH_GAP_FIELDS if not f.startswith("_")))
        return (
            f"{'; '.join(found)}: the rebuild would show those tasks without their batch facts ({fields}, "
            "the batch choice), so it would differ from the live view in exactly those fields"
        )

    def refusal(self) -> str:
        return (
            f"{self.describe()}; pass {FLAG} to rebuild anyway (verify then reports those differences as "
            "expected, 'batch facts past retention', and swaps when nothing else differs)"
        )


def batch_gaps(
    batch_logs: Sequence[BatchLog], retention_ms: int, older_stories: int, now_ms: int
) -> BatchGaps:
    """The gaps a rebuild would have, from the batches' log starts and the count of older stories."""
    deleted = tuple(b for b in sorted(batch_logs, key=lambda b: (b.topic, b.partition)) if b.log_start > 0)
    if retention_ms < 0:  # kept forever: no story is older than the batches
        return BatchGaps(deleted, 0, 0, retention_ms)
    return BatchGaps(deleted, max(older_stories, 0), now_ms - retention_ms, retention_ms)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _days(ms: int) -> str:
    days = ms / 86_400_000
    return f"{days:g} day{'s' if days != 1 else ''}"
