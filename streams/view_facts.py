"""What the job view is reduced from: facts, one per event and per task of a batch (pure, no I/O).

A BatchReady is about many tasks, possibly of many stories; the view applies it to each task's story
as one :class:`BatchedTask`. A StorySubmitted that broke the event contract but names its story and
account becomes a :class:`RejectedStory`, so that story fails with the reason instead of waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import BatchReady, Event
from schemas.records import BatchTask


@dataclass(frozen=True, slots=True)
class BatchedTask:
    """One task of a BatchReady, as the view applies it to that task's story."""

    batch: BatchReady
    task: BatchTask


@dataclass(frozen=True, slots=True)
class RejectedStory:
    """A StorySubmitted that broke the contract, but names its story and account: the story fails."""

    story_id: str
    account_id: str
    event_time: int
    event_id: str
    reason: str
    sequence: int = 0


Fact = Event | BatchedTask | RejectedStory


def story_id_of(fact: Fact) -> str:
    if isinstance(fact, BatchedTask):
        return fact.task.story_id
    return fact.story_id  # type: ignore[union-attr]  # every fact but an unexpanded BatchReady names one


def expand(event: Event) -> list[Fact]:
    """The facts an event contributes: a BatchReady contributes one per task."""
    if isinstance(event, BatchReady):
        return [BatchedTask(event, task) for task in event.tasks]
    return [event]


def task_id_of(fact: Fact) -> str | None:
    """The task a fact is about, or None for story-level facts."""
    if isinstance(fact, BatchedTask):
        return fact.task.task_id
    return getattr(fact, "task_id", None)


def event_of(fact: Fact) -> Event | RejectedStory:
    """The event behind a fact (a BatchedTask's batch)."""
    return fact.batch if isinstance(fact, BatchedTask) else fact
