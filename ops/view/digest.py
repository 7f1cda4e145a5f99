"""Comparing two generations of the job view: per-story digests, and a diff that says why they differ.

A story's digest is a stable hash of its story document and all its task documents, without the one
field that is write bookkeeping rather than content: ``_rev`` (the store's revision of what it wrote;
equal content gives an equal revision, but a document written before revisions existed has none).
Fields that old documents lack (``_tasks``, ``_rejected``) count as their defaults. Everything else is
derived from event times and ids alone (``updated_at`` is the newest event's time, not the time of the
write), so a view rebuilt from the same records is identical, field for field.

What can differ legitimately, and the reason the diff gives:

* a story only the live view has: its records are gone from the log (a topic's retention), or the
  rebuild stopped before records the live view had already applied;
* a story only the rebuild has: the live materializer is behind (or a live document was lost);
* ``batch_id``, ``batched_at``, ``consumer_id`` of a task: ``batches.*`` keep only 7 days, so a task
  batched longer ago rebuilds without them;
* a field the live document does not have at all: it was written by an older Storee, before the field
  existed (the reduction writes every field of :func:`streams.view_doc.new_story` / ``new_task``), and
  the rebuild fills it in (a story's ``attempts``, a task's ``params`` a retry needs). Such stories are
  always *expected* ("the live document predates the field"): the rebuild is the upgrade;
* any other field: the two views applied different records of that story (one is behind), or the
  reduction changed between the two builds.

With ``batch_gaps`` (``storee view rebuild --accept-batch-gaps``, see :mod:`ops.view.gaps`) a story whose
every difference is a batch fact the rebuild lacks (:data:`BATCH_GAP_FIELDS`, empty in the rebuild) is
*expected*, with the reason "batch facts past retention": listed apart, and not counted as differing.

The comparison is pure: :func:`compare` takes both generations as ``{story_id: StoryDocs}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

IGNORED = frozenset({"_rev"})
DEFAULTS: Mapping[str, Any] = {"_tasks": None, "_rejected": None}
BATCH_FIELDS = frozenset({"batch_id", "batched_at", "consumer_id"})
# What a task rebuilt without its batch records lacks: the batch fields and the batch choice (``_batch``).
BATCH_GAP_FIELDS = BATCH_FIELDS | {"_batch"}
SHOWN_VALUE = 80  # characters of a value the diff shows

ONLY_LIVE = "only in the live view: its records left the log (retention), or the rebuild stopped before them"
ONLY_SHADOW = "only in the rebuild: the live materializer is behind, or a live document was lost"
BATCH_REASON = "batches.* keep 7 days: a task batched longer ago rebuilds without its batch fields"
EXPECTED_REASON = "batch facts past retention (accepted with --accept-batch-gaps)"
PREDATES_REASON = "the live document predates this field (written by an older Storee); the rebuild adds it"
EVENTS_REASON = "the views applied different records of this story (one is behind) or the reduction changed"


@dataclass(frozen=True, slots=True)
class StoryDocs:
    """One story's documents in one generation: the story document and its tasks by id."""

    story: Mapping[str, Any] | None
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Difference:
    """One way a story differs: ``what`` (``story``, ``task <id>`` or a field path), both values, why."""

    story_id: str
    what: str
    live: str
    shadow: str
    reason: str


@dataclass(frozen=True, slots=True)
class Comparison:
    live_stories: int
    shadow_stories: int
    live_tasks: int
    shadow_tasks: int
    differing: tuple[str, ...]  # story ids whose digests differ, sorted
    differences: tuple[Difference, ...]
    expected: tuple[str, ...] = ()  # stories differing only where a difference is expected (accepted)
    expected_differences: tuple[Difference, ...] = ()

    @property
    def identical(self) -> bool:
        """Nothing differs but what was accepted (``expected``)."""
        return not self.differing and (self.live_stories, self.live_tasks) == (
            self.shadow_stories,
            self.shadow_tasks,
        )


def content(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a document says, bookkeeping of the write left out and old documents' gaps filled."""
    body = {k: v for k, v in doc.items() if k not in IGNORED}
    for name, default in DEFAULTS.items():
        body.setdefault(name, default)
    return body


def digest(docs: StoryDocs) -> str:
    """A stable hash of a story's documents (story and tasks, in task id order)."""
    body = {
        "story": content(docs.story) if docs.story is not None else None,
        "tasks": [content(docs.tasks[task_id]) for task_id in sorted(docs.tasks)],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def compare(
    live: Mapping[str, StoryDocs],
    shadow: Mapping[str, StoryDocs],
    *,
    limit: int = 50,
    batch_gaps: bool = False,
) -> Comparison:
    """Counts of both generations, the stories whose digests differ, and up to ``limit`` differences;
    with ``batch_gaps``, stories differing only in batch facts the rebuild lacks are ``expected``."""
    differing = sorted(
        story_id
        for story_id in set(live) | set(shadow)
        if story_id not in live
        or story_id not in shadow
        or digest(live[story_id]) != digest(shadow[story_id])
    )
    expected: list[str] = []
    expected_differences: list[Difference] = []
    for story_id in list(differing):
        found = explain(story_id, live.get(story_id), shadow.get(story_id))
        if found and all(_accepted(d, batch_gaps) for d in found):
            differing.remove(story_id)
            expected.append(story_id)
            if len(expected_differences) < limit:
                expected_differences.extend(
                    d if d.reason == PREDATES_REASON else replace(d, reason=EXPECTED_REASON) for d in found
                )
    differences: list[Difference] = []
    for story_id in differing:
        differences.extend(explain(story_id, live.get(story_id), shadow.get(story_id)))
        if len(differences) >= limit:
            break
    return Comparison(
        live_stories=sum(docs.story is not None for docs in live.values()),
        shadow_stories=sum(docs.story is not None for docs in shadow.values()),
        live_tasks=sum(len(docs.tasks) for docs in live.values()),
        shadow_tasks=sum(len(docs.tasks) for docs in shadow.values()),
        differing=tuple(differing),
        differences=tuple(differences[:limit]),
        expected=tuple(expected),
        expected_differences=tuple(expected_differences[:limit]),
    )


def _accepted(difference: Difference, batch_gaps: bool) -> bool:
    """A difference that is no disagreement: a field the live document predates, or (``batch_gaps``) a
    batch fact the rebuild lacks."""
    if difference.reason == PREDATES_REASON:
        return True
    return batch_gaps and difference.reason == BATCH_REASON and _gap_field(difference.what)


def _gap_field(what: str) -> bool:
    """``task <id>.<field>`` naming one of :data:`BATCH_GAP_FIELDS`."""
    return what.startswith("task ") and what.rpartition(".")[2] in BATCH_GAP_FIELDS


def explain(story_id: str, live: StoryDocs | None, shadow: StoryDocs | None) -> list[Difference]:
    """Every document and field in which one story's two versions differ, each with its reason."""
    if live is None or live.story is None and not live.tasks:
        return [Difference(story_id, "story", "missing", "present", ONLY_SHADOW)]
    if shadow is None or shadow.story is None and not shadow.tasks:
        return [Difference(story_id, "story", "present", "missing", ONLY_LIVE)]
    found = _fields(story_id, "story", live.story, shadow.story)
    for task_id in sorted(set(live.tasks) | set(shadow.tasks)):
        found += _fields(story_id, f"task {task_id}", live.tasks.get(task_id), shadow.tasks.get(task_id))
    return found


def _fields(
    story_id: str, what: str, live: Mapping[str, Any] | None, shadow: Mapping[str, Any] | None
) -> list[Difference]:
    if live is None or shadow is None:
        if live is None and shadow is None:
            return []
        reason = ONLY_SHADOW if live is None else ONLY_LIVE
        return [Difference(story_id, what, _presence(live), _presence(shadow), reason)]
    old, new = content(live), content(shadow)
    found = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            if name not in old:
                reason = PREDATES_REASON
            elif name in BATCH_GAP_FIELDS and new.get(name) is None:
                reason = BATCH_REASON
            else:
                reason = EVENTS_REASON
            found.append(
                Difference(story_id, f"{what}.{name}", _show(old.get(name)), _show(new.get(name)), reason)
            )
    return found


def _presence(doc: Mapping[str, Any] | None) -> str:
    return "missing" if doc is None else "present"


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 1] + "…"
