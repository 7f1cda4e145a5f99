"""The events: one frozen class per ``.avsc`` in ``schemas/avro``, constructed with keyword arguments.

Every event carries ``event_id`` (random, for deduplication), ``event_time`` (milliseconds since the
Unix epoch, UTC; a plain Avro ``long`` rather than the timestamp-millis logical type, so the codec
never builds datetimes and timestamps compare as integers) and ``sequence`` (the per-story order the
job view applies updates in). Field meanings are documented once, in the ``.avsc`` files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.ids import new_event_id, now_ms
from schemas.records import (
    NAMESPACE,
    SHARED_TYPES,
    BatchTask,
    GenerationParams,
    MediaRef,
    OutputArtifact,
    Record,
    Scene,
    TaskType,
    Tier,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(Record):
    """Fields every event carries; ``event_id`` and ``event_time`` default to a new id and now."""

    event_id: str = field(default_factory=new_event_id)
    event_time: int = field(default_factory=now_ms)
    sequence: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StorySubmitted(Event):
    """A story or prompt was accepted for generation."""

    story_id: str
    account_id: str
    tier: Tier
    title: str | None = None
    task_type: TaskType
    model: str
    params: GenerationParams
    scenes: tuple[Scene, ...] = ()
    story_text: str | None = None
    input: MediaRef | None = None
    callback_url: str | None = None
    webhook_events: tuple[str, ...] = ()
    idempotency_key: str | None = None
    submitted_at: int
    deadline: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRequested(Event):
    """One scene or clip of a story is ready to be generated."""

    story_id: str
    task_id: str
    account_id: str
    tier: Tier
    task_type: TaskType
    model: str
    scene_index: int
    task_count: int
    prompt: str
    params: GenerationParams
    input: MediaRef | None = None
    attempt: int = 0
    deadline: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReady(Event):
    """Compatible tasks to run in one pipeline call."""

    batch_id: str
    pool: str
    tier: Tier
    task_type: TaskType
    model: str
    params: GenerationParams
    tasks: tuple[BatchTask, ...]
    deadline: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted(Event):
    """A GPU consumer began running a task."""

    story_id: str
    task_id: str
    batch_id: str
    consumer_id: str
    attempt: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskProgress(Event):
    """A running task advanced."""

    story_id: str
    task_id: str
    batch_id: str
    consumer_id: str
    step: int
    total_steps: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCompleted(Event):
    """A task produced its output."""

    story_id: str
    task_id: str
    batch_id: str
    consumer_id: str
    attempt: int = 0
    outputs: tuple[OutputArtifact, ...]
    seed: int | None = None
    run_ms: int
    gpu_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(Event):
    """A task failed."""

    story_id: str
    task_id: str
    batch_id: str | None = None
    consumer_id: str
    error_class: str
    message: str
    attempt: int
    retriable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskExpired(Event):
    """A task passed its deadline before it completed."""

    story_id: str
    task_id: str
    deadline: int
    attempt: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryCancelled(Event):
    """The submitter cancelled a story."""

    story_id: str
    account_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryCompleted(Event):
    """Every task of a story reached an end state."""

    story_id: str
    account_id: str
    tasks_completed: int
    tasks_failed: int
    tasks_expired: int
    gpu_seconds: float
    retry: int = 0


EVENT_TYPES: tuple[type[Event], ...] = (
    StorySubmitted,
    TaskRequested,
    BatchReady,
    TaskStarted,
    TaskProgress,
    TaskCompleted,
    TaskFailed,
    TaskExpired,
    StoryCancelled,
    StoryCompleted,
)

EVENTS_BY_NAME: dict[str, type[Event]] = {cls.schema_name: cls for cls in EVENT_TYPES}

# Events on the task.events topic, keyed by story_id.
TASK_EVENT_TYPES: tuple[type[Event], ...] = (
    TaskStarted,
    TaskProgress,
    TaskCompleted,
    TaskFailed,
    TaskExpired,
    StoryCancelled,
    StoryCompleted,
)

# Every Python class that stands for a named Avro type, by the type's full name.
PYTHON_TYPES: dict[str, type] = {f"{NAMESPACE}.{cls.__name__}": cls for cls in (*SHARED_TYPES, *EVENT_TYPES)}
