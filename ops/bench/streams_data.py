"""Events to feed the stream processors with, for benches and tests: stories, and what GPU consumers
report about their tasks, with fixed ids and times unless told otherwise."""

from __future__ import annotations

from typing import Any

from schemas.events import (
    StoryCancelled,
    StorySubmitted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskStarted,
)
from schemas.ids import task_id
from schemas.records import GenerationParams, OutputArtifact, Scene, TaskType, Tier

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
POOL = "default"


def params(**overrides: Any) -> GenerationParams:
    values: dict[str, Any] = dict(
        width=832, height=480, num_frames=81, fps=16, num_inference_steps=30, guidance_scale=5.0, seed=7
    )
    values.update(overrides)
    return GenerationParams(**values)


def story(
    story_id: str = "s1", *, n_scenes: int = 3, text: str | None = None, **overrides: Any
) -> StorySubmitted:
    values: dict[str, Any] = dict(
        event_id=f"sub-{story_id}".ljust(32, "0")[:32],
        event_time=T0,
        story_id=story_id,
        account_id="acct-1",
        tier=Tier.PREMIUM,
        title="The fox",
        task_type=TaskType.TEXT_TO_VIDEO,
        model=POOL,
        params=params(),
        scenes=()
        if text is not None
        else tuple(Scene(index=i, prompt=f"scene {i}") for i in range(n_scenes)),
        story_text=text,
        submitted_at=T0,
    )
    values.update(overrides)
    return StorySubmitted(**values)


def started(story_id: str, index: int, batch: str, at: int, attempt: int = 0) -> TaskStarted:
    return TaskStarted(
        event_id=f"st{story_id}{index}{attempt}".ljust(32, "0"),
        event_time=at,
        sequence=2,
        story_id=story_id,
        task_id=task_id(story_id, index),
        batch_id=batch,
        consumer_id="gpu-0",
        attempt=attempt,
    )


def progress(story_id: str, index: int, batch: str, at: int, step: int) -> TaskProgress:
    return TaskProgress(
        event_id=f"pr{story_id}{index}{step}".ljust(32, "0"),
        event_time=at,
        sequence=3,
        story_id=story_id,
        task_id=task_id(story_id, index),
        batch_id=batch,
        consumer_id="gpu-0",
        step=step,
        total_steps=30,
    )


def completed(story_id: str, index: int, batch: str, at: int) -> TaskCompleted:
    return TaskCompleted(
        event_id=f"co{story_id}{index}".ljust(32, "0"),
        event_time=at,
        sequence=4,
        story_id=story_id,
        task_id=task_id(story_id, index),
        batch_id=batch,
        consumer_id="gpu-0",
        outputs=(OutputArtifact(uri=f"file:///out/{story_id}/{index}.mp4", media_type="video/mp4"),),
        seed=7,
        run_ms=900,
        gpu_seconds=0.5,
    )


def failed(story_id: str, index: int, at: int, *, retriable: bool = False, attempt: int = 0) -> TaskFailed:
    return TaskFailed(
        event_id=f"fa{story_id}{index}{attempt}".ljust(32, "0"),
        event_time=at,
        sequence=4,
        story_id=story_id,
        task_id=task_id(story_id, index),
        batch_id="b-x",
        consumer_id="gpu-0",
        error_class="torch.OutOfMemoryError",
        message="CUDA out of memory",
        attempt=attempt,
        retriable=retriable,
    )


def expired(story_id: str, index: int, at: int) -> TaskExpired:
    return TaskExpired(
        event_id=f"ex{story_id}{index}".ljust(32, "0"),
        event_time=at,
        sequence=2,
        story_id=story_id,
        task_id=task_id(story_id, index),
        deadline=at,
    )


def cancelled(story_id: str, at: int) -> StoryCancelled:
    return StoryCancelled(
        event_id=f"ca{story_id}".ljust(32, "0"),
        event_time=at,
        sequence=5,
        story_id=story_id,
        account_id="acct-1",
        reason="changed my mind",
    )
