"""What every pipeline runner takes and returns, whatever its task type or backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from schemas.records import GenerationParams, TaskType

# Called after each denoising step with (steps done, total steps); runs on the pipeline's thread.
StepCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class TaskInput:
    """One task of a pipeline call: its prompt and the seed its generator starts from."""

    task_id: str
    prompt: str
    negative_prompt: str
    seed: int


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One pipeline call: tasks that share ``params`` (size, frames, steps, guidance)."""

    tasks: tuple[TaskInput, ...]
    params: GenerationParams


@dataclass(frozen=True, slots=True)
class RenderedMedia:
    """One task's output, written to ``path`` (a scratch file the caller moves into the output store)."""

    task_id: str
    path: Path
    media_type: str
    extension: str
    duration_s: float | None
    seed: int


class BatchRunner(Protocol):
    """A loaded pipeline that renders a whole batch in one call."""

    task_types: frozenset[TaskType]
    simulated: bool
    device: str

    def run(
        self, request: BatchRequest, work_dir: Path, on_step: StepCallback | None = None
    ) -> list[RenderedMedia]:
        """Render every task of ``request`` into ``work_dir``, in the request's order.

        Files are named by the task's position in the request, never by its id.
        """
        ...
