"""The batch executor's test bench: a fake runner and publisher, cancellations as a set, factories.

Shared by ``test_executor.py`` (the run: chunks, failures, isolation) and ``test_triage.py`` (what
is decided before a task runs: unsafe ids, cancellations, stored outputs).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

from gpu_consumers.exceptions import ResultRefused
from gpu_consumers.executor import BatchExecutor
from gpu_consumers.failures import RetryPolicy
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.pipelines.batch import BatchRequest, RenderedMedia, StepCallback
from gpu_consumers.work import PendingBatch
from ops.runtime.storage import LocalStore
from schemas.dlq import DeadLetter
from schemas.events import BatchReady, Event
from schemas.ids import now_ms
from schemas.records import BatchTask, TaskType, Tier
from tests.gpu_consumers.helpers import make_batch

NOW = now_ms()


class FakeRunner:
    task_types = frozenset({TaskType.TEXT_TO_VIDEO})
    simulated = False
    device = "cpu"

    def __init__(
        self, failures: list[BaseException | None] | None = None, oom_above: int | None = None
    ) -> None:
        self.failures = list(failures or [])
        self.oom_above = oom_above
        self.calls: list[list[str]] = []
        self.before_output: Callable[[BatchRequest], None] | None = None
        self.swap_ids = False  # a runner bug: outputs labelled with the wrong task

    def run(
        self, request: BatchRequest, work_dir: Path, on_step: StepCallback | None = None
    ) -> list[RenderedMedia]:
        self.calls.append([task.task_id for task in request.tasks])
        if self.oom_above is not None and len(request.tasks) > self.oom_above:
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        for step in (1, 2):
            if on_step is not None:
                on_step(step, 2)
        if self.before_output is not None:
            self.before_output(request)
        outputs = []
        for index, task in enumerate(request.tasks):
            path = work_dir / f"{index:04d}.mp4"
            path.write_bytes(b"video of " + task.prompt.encode())
            outputs.append(RenderedMedia(task.task_id, path, "video/mp4", "mp4", 1.0, task.seed))
        if self.swap_ids:
            outputs.reverse()
        return outputs


class Cancelled:
    """The cancellation watcher's side the executor sees: a set of story ids."""

    def __init__(self, *story_ids: str, caught_up: bool = True) -> None:
        self.ids = set(story_ids)
        self.caught_up = caught_up

    def is_cancelled(self, story_id: str) -> bool:
        return story_id in self.ids

    def wait_caught_up(self, timeout: float) -> bool:
        return self.caught_up


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dead_letters: list[DeadLetter] = []
        self.confirmed = 0
        self.refuse: list[ResultRefused] = []

    def event(self, event: Event) -> None:
        self.events.append(event)

    def dead_letter(self, record: object) -> None:
        self.dead_letters.append(DeadLetter.from_headers(record.headers))  # type: ignore[attr-defined]

    def confirm(self, timeout: float) -> None:
        if self.refuse:
            raise self.refuse.pop(0)
        self.confirmed = len(self.events)

    def of(self, kind: type) -> list:
        return [event for event in self.events if isinstance(event, kind)]


def executor(
    runner: FakeRunner,
    tmp_path: Path,
    *,
    max_batch_size: int = 8,
    waits: list[float] | None = None,
    stop: bool = False,
    cancellations: Cancelled | None = None,
    store: LocalStore | None = None,
    **options: object,
) -> tuple[BatchExecutor, FakePublisher]:
    publisher = FakePublisher()

    def wait(seconds: float) -> bool:
        if waits is not None:
            waits.append(seconds)
        return stop

    return BatchExecutor(
        runner,
        store or LocalStore(tmp_path),
        publisher,  # type: ignore[arg-type]
        ConsumerMetrics("tiny"),
        consumer_id="host/1/cpu",
        max_batch_size=max_batch_size,
        policy=RetryPolicy(max_retries=2, base_s=1.0, max_s=30.0),
        progress_interval_s=0.0,
        wait=wait,
        clock=lambda: NOW,
        rng=random.Random(1),
        cancellations=cancellations,
        **options,  # type: ignore[arg-type]
    ), publisher


def pending(prompts: int = 4, **kwargs: object) -> PendingBatch:
    return wrap(make_batch([f"prompt {i}" for i in range(prompts)], **kwargs))  # type: ignore[arg-type]


def wrap(batch: BatchReady) -> PendingBatch:
    return PendingBatch(batch, Tier.PREMIUM, "t.batches.tiny.premium", 0, 7, b"k", b"value", [("h", b"1")])


def with_tasks(batch: BatchReady, *tasks: BatchTask) -> BatchReady:
    """``batch`` with ``tasks`` appended, built without any id checks (as a bad producer would)."""
    return dataclasses.replace(batch, tasks=batch.tasks + tasks)


def task_like(batch: BatchReady, **changes: object) -> BatchTask:
    return dataclasses.replace(batch.tasks[0], **changes)  # type: ignore[arg-type]
