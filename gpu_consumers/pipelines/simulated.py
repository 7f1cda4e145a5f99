"""The simulated backend, for load benchmarks only: sleeps a fixed time per batch, writes placeholders.

Its outputs are small text files with the media type :data:`SIMULATED_MEDIA_TYPE`, and the consumer
that runs it adds ``+simulated`` to its consumer id, so no event it emits can pass for a real render.
"""

from __future__ import annotations

import time
from pathlib import Path

from gpu_consumers.pipelines.batch import BatchRequest, RenderedMedia, StepCallback
from schemas.records import TaskType

SIMULATED_MEDIA_TYPE = "application/x-storee-simulated"


class SimulatedRunner:
    """Takes ``seconds_per_batch`` per call, whatever the batch holds."""

    task_types = frozenset(TaskType)
    simulated = True
    device = "simulated"

    def __init__(self, seconds_per_batch: float) -> None:
        if seconds_per_batch < 0:
            raise ValueError(f"seconds_per_batch must be >= 0, got {seconds_per_batch}")
        self.seconds_per_batch = seconds_per_batch

    def run(
        self, request: BatchRequest, work_dir: Path, on_step: StepCallback | None = None
    ) -> list[RenderedMedia]:
        """Sleep for the configured time (spread over the steps, reporting each), then write placeholders."""
        steps = max(request.params.num_inference_steps, 1)
        deadline = time.monotonic() + self.seconds_per_batch
        for step in range(1, steps + 1):
            # Sleep to the step's share of the deadline, not a fixed slice, so the total does not drift.
            time.sleep(
                max(0.0, deadline - (steps - step) * self.seconds_per_batch / steps - time.monotonic())
            )
            if on_step is not None:
                on_step(step, steps)
        outputs = []
        for index, task in enumerate(request.tasks):
            # Named by position, never by task id: an id is not trusted to be a safe file name.
            path = work_dir / f"{index:04d}.simulated.txt"
            path.write_text(f"simulated output of task {task.task_id} (seed {task.seed})\n", encoding="utf-8")
            outputs.append(
                RenderedMedia(
                    task_id=task.task_id,
                    path=path,
                    media_type=SIMULATED_MEDIA_TYPE,
                    extension="simulated.txt",
                    duration_s=None,
                    seed=task.seed,
                )
            )
        return outputs
