"""Small factories: one fully populated instance of every event, with fixed ids and times."""

from __future__ import annotations

from schemas.events import (
    BatchReady,
    Event,
    StoryCancelled,
    StoryCompleted,
    StorySubmitted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskRequested,
    TaskStarted,
)
from schemas.ids import batch_id, task_id
from schemas.records import BatchTask, GenerationParams, MediaRef, OutputArtifact, Scene, TaskType, Tier

STORY = "6f1c2d3e4b5a69788796a5b4c3d2e1f0"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EVENT_ID = "0" * 32
COMMON: dict[str, object] = {"event_id": EVENT_ID, "event_time": T0}


def params(**overrides: object) -> GenerationParams:
    values: dict[str, object] = dict(
        width=832, height=480, num_frames=81, fps=16, num_inference_steps=30, guidance_scale=5.0, seed=42
    )
    values.update(overrides)
    return GenerationParams(**values)  # type: ignore[arg-type]


def task_requested(index: int = 0, **overrides: object) -> TaskRequested:
    values: dict[str, object] = dict(
        COMMON,
        sequence=1,
        story_id=STORY,
        task_id=task_id(STORY, index),
        account_id="acct-1",
        tier=Tier.PREMIUM,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        scene_index=index,
        task_count=3,
        prompt="a red fox runs through fresh snow at dawn, cinematic",
        params=params(),
        deadline=T0 + 600_000,
    )
    values.update(overrides)
    return TaskRequested(**values)  # type: ignore[arg-type]


def batch_ready(size: int = 8) -> BatchReady:
    tasks = tuple(
        BatchTask(
            task_id=task_id(STORY, i),
            story_id=STORY,
            account_id="acct-1",
            sequence=1,
            scene_index=i,
            prompt=f"scene {i}: a red fox runs through fresh snow at dawn, cinematic",
            params=params(seed=100 + i),
            deadline=T0 + 600_000,
        )
        for i in range(size)
    )
    return BatchReady(
        event_id=EVENT_ID,
        event_time=T0,
        sequence=1,
        batch_id=batch_id(t.task_id for t in tasks),
        pool="default",
        tier=Tier.PREMIUM,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        params=params(seed=None),
        tasks=tasks,
        deadline=T0 + 600_000,
    )


def all_events() -> list[Event]:
    """One instance of every event class, optional fields filled in."""
    image = MediaRef(uri="s3://inputs/fox.png", media_type="image/png", sha256="ab" * 32)
    return [
        StorySubmitted(
            event_id=EVENT_ID,
            event_time=T0,
            story_id=STORY,
            account_id="acct-1",
            tier=Tier.FREE,
            title="The fox",
            task_type=TaskType.IMAGE_TO_VIDEO,
            model="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            params=params(negative_prompt="blurry"),
            scenes=(
                Scene(index=0, prompt="the fox wakes"),
                Scene(index=1, prompt="the fox runs", input=image),
            ),
            input=image,
            callback_url="https://example.com/hook",
            idempotency_key="key-1",
            submitted_at=T0,
        ),
        StorySubmitted(
            event_id=EVENT_ID,
            event_time=T0,
            story_id=STORY,
            account_id="acct-1",
            tier=Tier.PREMIUM,
            task_type=TaskType.TEXT_TO_AUDIO,
            model="cvssp/audioldm2",
            params=params(width=0, height=0, num_frames=0, fps=0, audio_length_s=10.5),
            story_text="A fox wakes. It runs. It sleeps.",
            submitted_at=T0,
        ),
        task_requested(),
        task_requested(2, input=image, task_type=TaskType.IMAGE_TO_VIDEO, attempt=1, deadline=None),
        batch_ready(),
        TaskStarted(
            event_id=EVENT_ID,
            event_time=T0,
            sequence=2,
            story_id=STORY,
            task_id=task_id(STORY, 0),
            batch_id="b-1",
            consumer_id="gpu-0@host-a",
        ),
        TaskProgress(
            event_id=EVENT_ID,
            event_time=T0,
            sequence=3,
            story_id=STORY,
            task_id=task_id(STORY, 0),
            batch_id="b-1",
            consumer_id="gpu-0@host-a",
            step=10,
            total_steps=30,
        ),
        TaskCompleted(
            event_id=EVENT_ID,
            event_time=T0,
            sequence=4,
            story_id=STORY,
            task_id=task_id(STORY, 0),
            batch_id="b-1",
            consumer_id="gpu-0@host-a",
            outputs=(
                OutputArtifact(
                    uri="s3://out/fox-0.mp4",
                    media_type="video/mp4",
                    duration_s=5.0625,
                    size_bytes=1_234_567,
                    sha256="cd" * 32,
                ),
            ),
            seed=42,
            run_ms=61_250,
            gpu_seconds=7.65625,
        ),
        TaskFailed(
            event_id=EVENT_ID,
            event_time=T0,
            sequence=4,
            story_id=STORY,
            task_id=task_id(STORY, 1),
            batch_id=None,
            consumer_id="splitter-1",
            error_class="torch.OutOfMemoryError",
            message="CUDA out of memory",
            attempt=0,
            retriable=True,
        ),
        TaskExpired(
            event_id=EVENT_ID,
            event_time=T0,
            sequence=5,
            story_id=STORY,
            task_id=task_id(STORY, 2),
            deadline=T0 + 600_000,
        ),
        StoryCancelled(
            event_id=EVENT_ID,
            event_time=T0,
            sequence=6,
            story_id=STORY,
            account_id="acct-1",
            reason="changed my mind",
        ),
        StoryCompleted(
            event_id=EVENT_ID,
            event_time=T0,
            sequence=7,
            story_id=STORY,
            account_id="acct-1",
            tasks_completed=1,
            tasks_failed=1,
            tasks_expired=1,
            gpu_seconds=7.65625,
        ),
    ]
