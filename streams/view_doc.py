"""The job view's documents as types: the stored MongoDB shape, field by field (pure, no I/O).

:class:`StoryDoc` and :class:`TaskDoc` are exactly what the materializer stores. Their public fields
are the ones :mod:`schemas.view` documents and the gateway reads. Their bookkeeping fields start with
``_`` and keep the short names and list layouts they were first stored with, because documents already
in MongoDB are read back, merged with new events and compared by revision: renaming a key or reordering
a list would make a stored document disagree with the same document rebuilt. Each bookkeeping list has
a named tuple here (:class:`Seen`, :class:`HeadKey`, ...) and an accessor that reads it; the reduction
(:mod:`streams.view`) stores ``list(key)``.

Keys compare as tuples. For the fields a document copies from one event (``_sub``, ``_cancel``,
``_rejected``, ``_src``, ``_batch``) the *smallest* key wins; for the head (``_head``), the event whose
status the task shows, the *greatest* wins, ranked by :class:`Finality`, then :class:`Phase` or
:class:`Outcome`. Rank values are stored inside those keys: never renumber them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple, NotRequired, TypedDict

from schemas.contract import retry_of
from schemas.view import StoryStatus, TaskStatus

# A key as MongoDB holds it: a list of ints and strings, read back by the accessors below.
StoredKey = list[Any]
# Tasks by status; batched tasks count as queued. Keys: see :func:`empty_counts`.
Counts = dict[str, int]
COUNTED_STATUSES = ("queued", "running", "completed", "failed", "expired", "cancelled")


class Finality(IntEnum):
    """The first rank of a head key: a final outcome beats everything that is still open."""

    OPEN = 0  # the task may still move: queued, batched, running, or failed with a retry to come
    FINAL = 1  # completed, failed for good, expired: no later event changes the status


class Phase(IntEnum):
    """Phases of a task without a final outcome, in the order they happen (after the attempt)."""

    QUEUED = 0
    BATCHED = 1
    RUNNING = 2
    RETRYING = 3  # failed, retriable: shown as failed until the next attempt's events arrive


class Outcome(IntEnum):
    """Final outcomes, weakest first: a completion beats a failure, which beats an expiry."""

    EXPIRED = 0
    FAILED = 1
    COMPLETED = 2


class Source(IntEnum):
    """Where a task's static fields (prompt, pool, deadline, ...) come from, best first."""

    REQUESTED = 2  # the TaskRequested itself
    BATCH = 3  # a BatchReady's copy of the task


class Rank(NamedTuple):
    """How strongly an event claims a task's status, before time and sequence break ties."""

    finality: int
    major: int  # open: the attempt; final: the outcome
    minor: int  # open: the phase; final: the attempt


def open_rank(attempt: int, phase: Phase) -> Rank:
    """A later attempt beats an earlier one; within an attempt, the later phase wins."""
    return Rank(int(Finality.OPEN), attempt, int(phase))


def final_rank(outcome: Outcome, attempt: int) -> Rank:
    """The stronger outcome wins whatever the attempt; the attempt only breaks ties."""
    return Rank(int(Finality.FINAL), int(outcome), attempt)


class HeadKey(NamedTuple):
    """``_head``: the greatest of these over a task's events picks the status it shows."""

    finality: int
    major: int
    minor: int
    event_time: int
    sequence: int
    event_id: str

    @property
    def is_final(self) -> bool:
        return self.finality == Finality.FINAL

    @property
    def attempt(self) -> int:
        return self.minor if self.is_final else self.major

    def order(self) -> tuple[Any, ...]:
        """What the head compares: a completion beats everything; otherwise the later run of the story
        (:func:`schemas.contract.retry_of`: a retry reopens what an earlier run ended), then the key.
        Within one run this is the key's own order, so documents stored before retries keep their heads.
        """
        completed = self.is_final and self.major == Outcome.COMPLETED
        return (completed, retry_of(self.attempt), *self)


class Seen(NamedTuple):
    """``_sub``, ``_cancel``: the earliest event of a kind (ties by id), so duplicates agree."""

    event_time: int
    event_id: str


class Rejection(NamedTuple):
    """``_rejected``: the earliest contract-breaking submission seen, and why it broke the contract."""

    event_time: int
    event_id: str
    reason: str

    @property
    def seen(self) -> Seen:
        return Seen(self.event_time, self.event_id)


class SourceKey(NamedTuple):
    """``_src``: the event a task's static fields come from; the smallest key wins."""

    source: int  # a :class:`Source`
    minus_attempt: int  # the highest attempt first
    event_time: int
    event_id: str


class AttemptTime(NamedTuple):
    """``_queued``, ``_start``: the first time of the latest attempt (queued_at, started_at)."""

    attempt: int
    at: int

    def replaced_by(self, attempt: int, at: int) -> bool:
        """Whether ``(attempt, at)`` is a later attempt, or the same attempt seen earlier."""
        return attempt > self.attempt or (attempt == self.attempt and at < self.at)


class BatchChoice(NamedTuple):
    """``_batch``: the batch a task runs in: highest attempt, then the earliest batch."""

    minus_attempt: int
    batched_at: int
    batch_id: str


class StoryError(TypedDict):
    code: str
    message: str


class TaskError(TypedDict):
    error_class: str
    message: str
    retriable: bool


class StoryOutput(TypedDict):
    task_id: str
    scene_index: int | None
    uri: str
    media_type: str


class RunSummary(TypedDict):
    """One run of a story in its ``attempts``: when it was asked for, how many tasks it ran, how it ended
    (the ``ended_at`` and counts are ``None`` until its StoryCompleted is read)."""

    retry: int
    requested_at: int | None
    tasks: int | None
    ended_at: int | None
    tasks_completed: int | None
    tasks_failed: int | None
    tasks_expired: int | None


class RunStart(NamedTuple):
    """``_runs`` entries: a retry's first TaskRequested time and the tasks it requested (sorted)."""

    retry: int
    requested_at: int
    task_ids: list[str]


class RunEnd(NamedTuple):
    """``_ends`` entries: the StoryCompleted of one run (the smallest ``(event_time, event_id)``)."""

    retry: int
    event_time: int
    event_id: str
    tasks_completed: int
    tasks_failed: int
    tasks_expired: int


class Head(TypedDict):
    """``_h``: what the head event says, copied into the task's public fields when it is finalized."""

    status: str
    consumer_id: str | None
    batch_id: str | None
    outputs: list[dict[str, Any]]
    error: TaskError | None
    finished_at: int | None
    gpu_seconds: NotRequired[float]
    simulated: bool


class StoryDoc(TypedDict):
    """A ``stories`` document; public fields as in :mod:`schemas.view`, then the bookkeeping."""

    _id: str
    account_id: str | None
    tier: str | None
    title: str | None
    task_type: str | None
    model: str | None
    status: str
    error: StoryError | None
    task_count: int | None
    counts: Counts
    progress: float
    submitted_at: int | None
    started_at: int | None
    finished_at: int | None
    callback_url: str | None
    webhook_events: list[str]  # the submission's webhook filter (empty: completed only)
    idempotency_key: str | None
    outputs: list[StoryOutput]
    updated_at: int
    _sub: StoredKey | None  # Seen: the StorySubmitted the story's fields come from
    _tc_req: int | None  # task count the splitter's TaskRequested events carry (their max)
    _tc_split: int | None  # task count our own split of the submission gives
    _split_error: StoryError | None  # why that split failed, if it did
    _cancel: StoredKey | None  # Seen: the StoryCancelled that counts
    retry: int  # the story's latest run: 0 until POST /v1/stories/{id}/retry
    attempts: list[RunSummary]  # one per run, oldest first
    _completed_emitted: bool  # a StoryCompleted was produced and acknowledged (or read back)
    _emitted: NotRequired[list[int]]  # the runs whose StoryCompleted was (absent in old documents: run 0)
    # Stored as objects, not lists: FerretDB refuses arrays nested in arrays.
    _runs: NotRequired[list[dict[str, Any]]]  # RunStart per retry (run 0 is the submission)
    _ends: NotRequired[list[dict[str, Any]]]  # RunEnd per run, from the StoryCompleted events read back
    _seq: int  # the highest sequence applied; StoryCompleted gets the next
    _tasks: NotRequired[list[str]]  # task ids, so the store loads them by _id (absent in old documents)
    _rejected: NotRequired[StoredKey | None]  # Rejection (absent in old documents)
    _rev: NotRequired[str]  # the revision the store wrote (view_store.revision)


class TaskSource(TypedDict):
    """A task's static fields, all taken from one event: the one with the smallest :class:`SourceKey`."""

    story_id: str | None
    account_id: str | None
    tier: str | None
    pool: str | None
    task_type: str | None
    model: str | None
    scene_index: int | None
    prompt: str | None
    deadline: int | None
    params: dict[str, Any] | None  # the GenerationParams record, so a retry requests the task as it was
    input: dict[str, Any] | None  # the MediaRef record of its input image or audio, if any


class TaskDoc(TaskSource):
    """A ``tasks`` document: its static fields (:class:`TaskSource`), the other public fields as in
    :mod:`schemas.view`, then the bookkeeping. The stored key order is :func:`new_task`'s."""

    _id: str
    status: str
    batch_id: str | None
    consumer_id: str | None
    attempt: int
    step: int
    total_steps: int
    queued_at: int | None
    batched_at: int | None
    started_at: int | None
    finished_at: int | None
    outputs: list[dict[str, Any]]
    error: TaskError | None
    simulated: bool
    updated_at: int
    _src: StoredKey | None  # SourceKey
    _queued: StoredKey | None  # AttemptTime of queued_at
    _batch: StoredKey | None  # BatchChoice
    _start: StoredKey | None  # AttemptTime of started_at
    _head: StoredKey | None  # HeadKey
    _h: Head | None
    _seq: int
    _rev: NotRequired[str]


ViewDoc = StoryDoc | TaskDoc


def new_story(story_id: str) -> StoryDoc:
    return {
        "_id": story_id, "account_id": None, "tier": None, "title": None, "task_type": None, "model": None,
        "status": StoryStatus.QUEUED.value, "error": None, "task_count": None,
        "counts": empty_counts(), "progress": 0.0, "submitted_at": None, "started_at": None,
        "finished_at": None, "callback_url": None, "webhook_events": [], "idempotency_key": None,
        "outputs": [], "updated_at": 0, "retry": 0, "attempts": [],
        "_sub": None, "_tc_req": None, "_tc_split": None, "_split_error": None, "_cancel": None,
        "_completed_emitted": False, "_emitted": [], "_runs": [], "_ends": [], "_seq": 0, "_tasks": [],
        "_rejected": None,
    }  # fmt: skip


def new_task(task_id: str) -> TaskDoc:
    story_id, _, index = task_id.rpartition(":")
    return {
        "_id": task_id, "story_id": story_id or None, "account_id": None, "tier": None, "pool": None,
        "task_type": None, "model": None, "scene_index": int(index) if index.isdigit() else None,
        "prompt": None, "status": TaskStatus.QUEUED.value, "batch_id": None, "consumer_id": None,
        "attempt": 0, "step": 0, "total_steps": 0, "queued_at": None, "batched_at": None,
        "started_at": None, "finished_at": None, "deadline": None, "outputs": [], "error": None,
        "simulated": False, "updated_at": 0, "params": None, "input": None,
        "_src": None, "_queued": None, "_batch": None, "_start": None, "_head": None, "_h": None, "_seq": 0,
    }  # fmt: skip


def empty_counts() -> Counts:
    return dict.fromkeys(COUNTED_STATUSES, 0)


def empty_head() -> Head:
    """The head of a task no event has ranked yet."""
    return {"status": TaskStatus.QUEUED.value, "consumer_id": None, "batch_id": None, "outputs": [],
            "error": None, "finished_at": None, "simulated": False}  # fmt: skip


# -- reading the bookkeeping lists --------------------------------------------------------------------


def submission(story: StoryDoc) -> Seen | None:
    return None if story["_sub"] is None else Seen(*story["_sub"])


def cancellation(story: StoryDoc) -> Seen | None:
    return None if story["_cancel"] is None else Seen(*story["_cancel"])


def rejection(story: StoryDoc) -> Rejection | None:
    stored = story.get("_rejected")
    return None if stored is None else Rejection(*stored)


def source(task: TaskDoc) -> SourceKey | None:
    return None if task["_src"] is None else SourceKey(*task["_src"])


def queued(task: TaskDoc) -> AttemptTime | None:
    return None if task["_queued"] is None else AttemptTime(*task["_queued"])


def start(task: TaskDoc) -> AttemptTime | None:
    return None if task["_start"] is None else AttemptTime(*task["_start"])


def batch_choice(task: TaskDoc) -> BatchChoice | None:
    return None if task["_batch"] is None else BatchChoice(*task["_batch"])


def head_key(task: TaskDoc) -> HeadKey | None:
    return None if task["_head"] is None else HeadKey(*task["_head"])


def runs(story: StoryDoc) -> list[RunStart]:
    return [RunStart(**entry) for entry in story.get("_runs") or []]


def ends(story: StoryDoc) -> list[RunEnd]:
    return [RunEnd(**entry) for entry in story.get("_ends") or []]


def emitted_runs(story: StoryDoc) -> set[int]:
    """The runs whose StoryCompleted was produced or read; a document from before retries knows only
    its flag, which was about run 0."""
    stored = story.get("_emitted")
    if stored is None:
        return {0} if story["_completed_emitted"] else set()
    return set(stored)
