"""The batcher's logic: compatible tasks gather into one open batch per signature (pure, no I/O).

Tasks are compatible when one pipeline call can run them together: same pool (the model), tier, task
type, resolution, frames, fps, steps and audio length. A batch closes when it holds ``size`` tasks,
when its oldest task has waited ``timeout_ms``, or before a task would push it past an optional cap on
estimated cost or GPU time (seed 002). Every state change is a new :class:`Pending` value.

A :class:`Pending` also carries the offset of the last source record applied to it (so a replay after a
crash skips what the restored state already holds) and an outbox of closed batches whose delivery is
not confirmed yet (so a crash between closing and delivering re-sends them rather than losing them).

Pure logic, named for what it computes; its I/O shell is :mod:`streams.batch_agent`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from schemas.events import BatchReady, TaskRequested
from schemas.ids import batch_id
from schemas.records import BatchTask, GenerationParams
from streams.event_ids import derived_event_id


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batch closes; caps of 0 are off."""

    size: int = 8
    timeout_ms: int = 5000
    max_cost: float = 0.0
    max_gpu_seconds: float = 0.0
    gpu_seconds_per_unit: float = 0.0005
    cost_per_gpu_second: float = 0.001

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.timeout_ms < 0:
            raise ValueError(f"timeout_ms must be >= 0, got {self.timeout_ms}")

    def gpu_seconds(self, params: GenerationParams) -> float:
        """Estimated GPU seconds of one task: diffusion cost grows with pixels x frames x steps."""
        if params.audio_length_s is not None and params.width == 0:
            units = params.audio_length_s * params.num_inference_steps / 10
        else:
            megapixels = params.width * params.height / 1e6
            units = megapixels * max(params.num_frames, 1) * params.num_inference_steps
        return units * self.gpu_seconds_per_unit

    def cost(self, params: GenerationParams) -> float:
        return self.gpu_seconds(params) * self.cost_per_gpu_second


@dataclass(frozen=True, slots=True)
class PendingTask:
    """A task waiting in an open batch, with the wall-clock time (ms) the batcher took it in."""

    task: TaskRequested
    arrived_at: int


@dataclass(frozen=True, slots=True)
class Pending:
    """One signature's open batch on one source partition, plus its unconfirmed closed batches."""

    offset: int = -1
    tasks: tuple[PendingTask, ...] = ()
    outbox: tuple[BatchReady, ...] = ()

    @property
    def opened_at(self) -> int | None:
        return self.tasks[0].arrived_at if self.tasks else None

    @property
    def is_empty(self) -> bool:
        return not self.tasks and not self.outbox


def signature(task: TaskRequested) -> str:
    """What a batch's tasks share; also the Kafka key of BatchReady records.

    Everything one pipeline call takes once for all its prompts: guidance too, since the call has one
    ``guidance_scale`` (seeds and negative prompts are per task).
    """
    p = task.params
    audio = "" if p.audio_length_s is None else f"{p.audio_length_s:g}"
    return (
        f"{task.model}|{task.tier.value}|{task.task_type.value}|{p.width}x{p.height}"
        f"|{p.num_frames}f|{p.fps}fps|{p.num_inference_steps}s|{audio}|{p.guidance_scale:g}g"
    )


def add(
    pending: Pending, task: TaskRequested, *, offset: int, now: int, policy: BatchPolicy
) -> tuple[Pending, list[BatchReady]]:
    """Take ``task`` (read at source ``offset``) in; return the new state and the batches it closed."""
    if offset <= pending.offset:
        return pending, []  # a replayed record the restored state already holds
    pending = replace(pending, offset=offset)
    if any(p.task.task_id == task.task_id and p.task.attempt == task.attempt for p in pending.tasks):
        return pending, []  # an upstream duplicate (same deterministic task id and attempt)
    closed: list[BatchReady] = []
    if pending.tasks and _over_cap([*pending.tasks, PendingTask(task, now)], policy):
        pending, batch = close(pending, now=now)
        closed.append(batch)
    pending = replace(pending, tasks=(*pending.tasks, PendingTask(task, now)))
    if len(pending.tasks) >= policy.size or _over_cap(pending.tasks, policy):
        pending, batch = close(pending, now=now)
        closed.append(batch)
    return pending, closed


def due(pending: Pending, *, now: int, policy: BatchPolicy) -> tuple[Pending, list[BatchReady]]:
    """Close the open batch if its oldest task has waited ``timeout_ms``."""
    opened = pending.opened_at
    if opened is None or now - opened < policy.timeout_ms:
        return pending, []
    pending, batch = close(pending, now=now)
    return pending, [batch]


def close(pending: Pending, *, now: int) -> tuple[Pending, BatchReady]:
    """Turn the open tasks into a BatchReady, which waits in the outbox until confirmed."""
    batch = make_batch([p.task for p in pending.tasks], now=now)
    return replace(pending, tasks=(), outbox=(*pending.outbox, batch)), batch


def confirm(pending: Pending, confirmed_batch_id: str) -> Pending:
    """Forget a batch Kafka acknowledged."""
    return replace(pending, outbox=tuple(b for b in pending.outbox if b.batch_id != confirmed_batch_id))


def drop_story(pending: Pending, story_id: str) -> tuple[Pending, list[TaskRequested]]:
    """Remove a cancelled story's open tasks; return them."""
    dropped = [p.task for p in pending.tasks if p.task.story_id == story_id]
    if not dropped:
        return pending, []
    return replace(pending, tasks=tuple(p for p in pending.tasks if p.task.story_id != story_id)), dropped


def make_batch(tasks: Iterable[TaskRequested], *, now: int) -> BatchReady:
    """The BatchReady for compatible ``tasks``, in the order given."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError("tasks must not be empty")
    first = tasks[0]
    ident = batch_id(t.task_id for t in tasks)
    deadlines = [t.deadline for t in tasks if t.deadline is not None]
    return BatchReady(
        event_id=derived_event_id("BatchReady", ident),
        event_time=now,
        sequence=max(t.sequence for t in tasks),
        batch_id=ident,
        pool=first.model,
        tier=first.tier,
        task_type=first.task_type,
        model=first.model,
        # Per-task seed, guidance and negative prompt travel in tasks[].params.
        params=replace(first.params, seed=None, negative_prompt=None),
        tasks=tuple(
            BatchTask(
                task_id=t.task_id,
                story_id=t.story_id,
                account_id=t.account_id,
                sequence=t.sequence,
                scene_index=t.scene_index,
                prompt=t.prompt,
                params=t.params,
                input=t.input,
                attempt=t.attempt,
                deadline=t.deadline,
            )
            for t in tasks
        ),
        deadline=min(deadlines) if deadlines else None,
    )


def _over_cap(tasks: Iterable[PendingTask], policy: BatchPolicy) -> bool:
    if not policy.max_cost and not policy.max_gpu_seconds:
        return False
    seconds = sum(policy.gpu_seconds(p.task.params) for p in tasks)
    if policy.max_gpu_seconds and seconds > policy.max_gpu_seconds:
        return True
    return bool(policy.max_cost) and seconds * policy.cost_per_gpu_second > policy.max_cost
