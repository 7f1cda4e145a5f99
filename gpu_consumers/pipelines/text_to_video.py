"""Text to video: one batched call of a diffusers pipeline for every prompt of a batch, then mp4 files.

Works with the diffusers text-to-video pipelines that share the common call signature (``prompt``,
``negative_prompt``, ``height``, ``width``, ``num_frames``, ``num_inference_steps``, ``guidance_scale``,
``generator``, ``output_type``, ``callback_on_step_end``): ``WanPipeline`` (the tiny local model and
Wan 2.1), ``LTXPipeline``, ``CogVideoXPipeline``. The pipeline is loaded by the caller and passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.utils import export_to_video

from gpu_consumers.pipelines.batch import BatchRequest, RenderedMedia, StepCallback
from schemas.records import TaskType

log = logging.getLogger(__name__)

MAX_SEED = 2**63 - 1
MP4 = "video/mp4"


@dataclass(frozen=True, slots=True)
class TextToVideoResult:
    """Frames of each video (``float32`` in [0, 1], shape frames x height x width x 3) and their seeds."""

    videos: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]


class TextToVideoRunner:
    """Runs a loaded diffusers text-to-video pipeline on ``device`` in ``dtype``."""

    task_types = frozenset({TaskType.TEXT_TO_VIDEO})
    simulated = False

    def __init__(
        self,
        pipeline: Any,
        *,
        device: str,
        dtype: torch.dtype,
        max_batch_size: int,
        call_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.device = device
        self.dtype = dtype
        self.max_batch_size = max_batch_size
        self.call_kwargs = dict(call_kwargs or {})
        # Wan and most video DiTs patchify 8x-downsampled latents in 2x2 patches.
        self.size_multiple = int(getattr(pipeline, "vae_scale_factor_spatial", 8)) * 2
        # Video VAEs compress time by this factor and need 1 + k * factor frames; others round silently.
        self.frame_multiple = int(getattr(pipeline, "vae_scale_factor_temporal", 1))

    def check_inputs(self, request: BatchRequest) -> None:
        """Refuse what the pipeline would silently round or misrender; the message names the argument."""
        params = request.params
        if not request.tasks:
            raise ValueError("tasks must not be empty")
        if len(request.tasks) > self.max_batch_size:
            raise ValueError(
                f"tasks holds {len(request.tasks)} tasks, more than max_batch_size={self.max_batch_size}"
            )
        for name, value in (("width", params.width), ("height", params.height)):
            if value <= 0 or value % self.size_multiple:
                raise ValueError(f"{name} must be a positive multiple of {self.size_multiple}, got {value}")
        if params.num_frames < 1 or (params.num_frames - 1) % self.frame_multiple:
            raise ValueError(
                f"num_frames must be 1 + a multiple of {self.frame_multiple}, got {params.num_frames}"
            )
        if params.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {params.num_inference_steps}")
        if params.fps < 1:
            raise ValueError(f"fps must be at least 1, got {params.fps}")
        for task in request.tasks:
            if not task.prompt.strip():
                raise ValueError(f"prompt of task {task.task_id} must not be empty")
            if not 0 <= task.seed <= MAX_SEED:
                raise ValueError(f"seed of task {task.task_id} must be in [0, 2**63), got {task.seed}")

    def __call__(self, request: BatchRequest, on_step: StepCallback | None = None) -> TextToVideoResult:
        """Render every prompt of ``request`` in one pipeline call."""
        # 1. Check inputs.
        self.check_inputs(request)
        params = request.params
        total = params.num_inference_steps

        # 2. One generator per task, on the CPU: a seed then gives the same noise on any device, and a
        #    task's video does not depend on its neighbours in the batch.
        generators = [torch.Generator(device="cpu").manual_seed(task.seed) for task in request.tasks]

        # 3. Report each denoising step (the callback must hand back the tensors it may change: none).
        def step_end(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(step + 1, total)
            return {}

        # 4. The batched call.
        output = self.pipeline(
            prompt=[task.prompt for task in request.tasks],
            negative_prompt=[task.negative_prompt for task in request.tasks],
            height=params.height,
            width=params.width,
            num_frames=params.num_frames,
            num_inference_steps=total,
            guidance_scale=params.guidance_scale,
            generator=generators,
            output_type="np",
            callback_on_step_end=step_end,
            **self.call_kwargs,
        )

        # 5. Frames as one float array per task.
        frames = np.asarray(output.frames, dtype=np.float32)
        if frames.ndim != 5 or frames.shape[0] != len(request.tasks):
            raise RuntimeError(
                f"pipeline returned frames of shape {frames.shape}, expected one video per task"
            )
        return TextToVideoResult(
            videos=tuple(np.clip(video, 0.0, 1.0) for video in frames),
            seeds=tuple(task.seed for task in request.tasks),
        )

    def run(
        self, request: BatchRequest, work_dir: Path, on_step: StepCallback | None = None
    ) -> list[RenderedMedia]:
        """Render the batch and export each video as an H.264 mp4 into ``work_dir``.

        Args:
            request: tasks sharing one set of generation parameters (size, frames, steps, guidance).
            work_dir: scratch directory for the mp4 files; the caller moves them into the output store.
            on_step: called with (steps done, total steps) after each denoising step.
        """
        result = self(request, on_step)
        outputs = []
        for index, (task, video) in enumerate(zip(request.tasks, result.videos, strict=True)):
            # Named by position, never by task id: an id is not trusted to be a safe file name.
            path = work_dir / f"{index:04d}.mp4"
            export_to_video(list(video), str(path), fps=request.params.fps)
            outputs.append(
                RenderedMedia(
                    task_id=task.task_id,
                    path=path,
                    media_type=MP4,
                    extension="mp4",
                    duration_s=len(video) / request.params.fps,
                    seed=task.seed,
                )
            )
        return outputs
