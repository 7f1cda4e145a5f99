"""Pipeline runners by task type, and the one place pipelines are loaded (``from_pretrained``).

One module per task type (diffusers layout): ``text_to_video``; ``image_to_video`` and
``text_to_audio`` are registry slots a later issue fills. The simulated backend stands in for any of
them in load benchmarks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from gpu_consumers.exceptions import PipelineLoadError, UnsupportedTask
from gpu_consumers.pipelines.batch import BatchRequest, BatchRunner, RenderedMedia, StepCallback, TaskInput
from gpu_consumers.pools import PoolConfig
from schemas.records import TaskType

__all__ = [
    "BatchRequest",
    "BatchRunner",
    "RenderedMedia",
    "StepCallback",
    "TaskInput",
    "load_runner",
]

log = logging.getLogger(__name__)

RunnerLoader = Callable[[PoolConfig, str], BatchRunner]


def _load_text_to_video(pool: PoolConfig, device: str) -> BatchRunner:
    # Imported here: torch and diffusers take seconds to import, which simulated pools never need.
    import diffusers
    import torch
    import transformers
    from diffusers import DiffusionPipeline

    from gpu_consumers.pipelines.text_to_video import TextToVideoRunner

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[pool.dtype]
    if pool.make_tiny and not (Path(pool.model) / "model_index.json").is_file():
        from gpu_consumers.tiny_model import make_tiny_wan

        log.info("building tiny model path=%s", pool.model)
        make_tiny_wan(Path(pool.model))
    # Loading bars go to stderr as raw terminal control codes; the log line below says enough.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        # The class comes from model_index.json: the tiny Wan, Wan 2.1 or LTX-Video load the same way.
        pipeline = DiffusionPipeline.from_pretrained(pool.model, torch_dtype=dtype)
    except (OSError, ValueError) as exc:
        raise PipelineLoadError(f"pool {pool.name!r} cannot load model {pool.model!r}: {exc}") from exc
    pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return TextToVideoRunner(
        pipeline,
        device=device,
        dtype=dtype,
        max_batch_size=pool.max_batch_size,
        call_kwargs=dict(pool.call_kwargs),
    )


def _not_yet(task_type: TaskType) -> RunnerLoader:
    def load(pool: PoolConfig, device: str) -> BatchRunner:
        raise UnsupportedTask(f"pool {pool.name!r}: {task_type.value} is not supported by this pool yet")

    return load


# Every task type has a slot, so adding one is filling it in, not threading a new case through.
RUNNERS: dict[TaskType, RunnerLoader] = {
    TaskType.TEXT_TO_VIDEO: _load_text_to_video,
    TaskType.IMAGE_TO_VIDEO: _not_yet(TaskType.IMAGE_TO_VIDEO),
    TaskType.TEXT_TO_AUDIO: _not_yet(TaskType.TEXT_TO_AUDIO),
}


def load_runner(pool: PoolConfig, device: str) -> BatchRunner:
    """Load ``pool``'s pipeline on ``device`` (once per process, before joining the group)."""
    started = time.monotonic()
    if pool.simulated:
        from gpu_consumers.pipelines.simulated import SimulatedRunner

        runner: BatchRunner = SimulatedRunner(pool.simulated_seconds)
    else:
        runner = RUNNERS[TaskType(pool.pipeline)](pool, device)
    log.info(
        "pipeline loaded pool=%s kind=%s model=%s device=%s seconds=%.2f",
        pool.name,
        pool.pipeline,
        pool.model or "-",
        device,
        time.monotonic() - started,
    )
    return runner
