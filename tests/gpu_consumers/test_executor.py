"""The batch executor with a fake runner and publisher: expiry, OOM splits, retries, dead letters."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gpu_consumers.executor import BatchExecutor, BatchHandedBack, ProgressThrottle
from gpu_consumers.failures import RetryPolicy
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.pipelines.batch import BatchRequest, RenderedMedia, StepCallback
from gpu_consumers.work import PendingBatch
from ops.storage import LocalStore
from schemas.dlq import DeadLetter
from schemas.events import Event, TaskCompleted, TaskExpired, TaskFailed, TaskProgress, TaskStarted
from schemas.ids import now_ms
from schemas.records import TaskType, Tier
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
        outputs = []
        for task in request.tasks:
            path = work_dir / f"{task.task_id.replace(':', '_')}.mp4"
            path.write_bytes(b"video of " + task.prompt.encode())
            outputs.append(RenderedMedia(task.task_id, path, "video/mp4", "mp4", 1.0, task.seed))
        return outputs


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dead_letters: list[DeadLetter] = []
        self.confirmed = 0

    def event(self, event: Event) -> None:
        self.events.append(event)

    def dead_letter(self, record: object) -> None:
        self.dead_letters.append(DeadLetter.from_headers(record.headers))  # type: ignore[attr-defined]

    def confirm(self, timeout: float) -> None:
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
) -> tuple[BatchExecutor, FakePublisher]:
    publisher = FakePublisher()

    def wait(seconds: float) -> bool:
        if waits is not None:
            waits.append(seconds)
        return stop

    return BatchExecutor(
        runner,
        LocalStore(tmp_path),
        publisher,
        ConsumerMetrics("tiny"),  # type: ignore[arg-type]
        consumer_id="host/1/cpu",
        max_batch_size=max_batch_size,
        policy=RetryPolicy(max_retries=2, base_s=1.0, max_s=30.0),
        progress_interval_s=0.0,
        wait=wait,
        clock=lambda: NOW,
        rng=random.Random(1),
    ), publisher


def pending(prompts: int = 4, **kwargs: object) -> PendingBatch:
    batch = make_batch([f"prompt {i}" for i in range(prompts)], **kwargs)  # type: ignore[arg-type]
    return PendingBatch(batch, Tier.PREMIUM, "t.batches.tiny.premium", 0, 7, b"k", b"value", [("h", b"1")])


def test_a_batch_runs_in_one_call_and_completes_every_task(tmp_path: Path) -> None:
    runner = FakeRunner()
    run, publisher = executor(runner, tmp_path)
    item = pending(3)
    report = run.execute(item)
    assert runner.calls == [[t.task_id for t in item.batch.tasks]]
    assert report.completed == 3 and report.failed == report.expired == 0
    assert len(publisher.of(TaskStarted)) == 3
    assert len(publisher.of(TaskProgress)) == 6
    completions = publisher.of(TaskCompleted)
    assert [c.seed for c in completions] == [1000, 1001, 1002]
    assert all(c.sequence == 4 for c in completions)  # task sequence 1 + the end-state step
    for completion, task in zip(completions, item.batch.tasks, strict=True):
        path = LocalStore(tmp_path).local_path(completion.outputs[0].uri)
        assert path == tmp_path / "outputs" / task.story_id / f"{task.task_id}.mp4"
        assert path.read_bytes() == f"video of {task.prompt}".encode()
    assert publisher.confirmed == len(publisher.events)


def test_tasks_past_their_deadline_expire_without_running(tmp_path: Path) -> None:
    runner = FakeRunner()
    run, publisher = executor(runner, tmp_path)
    report = run.execute(pending(2, deadline=NOW - 1))
    assert runner.calls == []
    assert report.expired == 2
    assert [e.deadline for e in publisher.of(TaskExpired)] == [NOW - 1, NOW - 1]
    assert publisher.of(TaskStarted) == []


def test_out_of_memory_splits_the_batch_in_halves(tmp_path: Path) -> None:
    runner = FakeRunner(oom_above=2)
    run, publisher = executor(runner, tmp_path)
    report = run.execute(pending(5))
    assert [len(call) for call in runner.calls] == [5, 2, 3, 1, 2]
    assert report.completed == 5
    assert publisher.dead_letters == []


def test_batches_larger_than_the_pool_cap_run_in_chunks(tmp_path: Path) -> None:
    runner = FakeRunner()
    run, _ = executor(runner, tmp_path, max_batch_size=2)
    assert run.execute(pending(5)).completed == 5
    assert [len(call) for call in runner.calls] == [2, 2, 1]


def test_transient_errors_retry_with_backoff(tmp_path: Path) -> None:
    runner = FakeRunner(failures=[RuntimeError("NCCL timeout")])
    waits: list[float] = []
    run, publisher = executor(runner, tmp_path, waits=waits)
    assert run.execute(pending(2)).completed == 2
    assert len(runner.calls) == 2
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0
    assert {c.attempt for c in publisher.of(TaskCompleted)} == {1}


def test_errors_past_the_retry_limit_fail_the_tasks_and_dead_letter_the_batch(tmp_path: Path) -> None:
    runner = FakeRunner(failures=[RuntimeError("driver crashed")] * 3)
    waits: list[float] = []
    run, publisher = executor(runner, tmp_path, waits=waits)
    report = run.execute(pending(2))
    assert report.failed == 2 and report.completed == 0
    assert len(runner.calls) == 3 and len(waits) == 2
    failed = publisher.of(TaskFailed)
    assert {f.error_class for f in failed} == {"RuntimeError"}
    assert {f.attempt for f in failed} == {2}
    (letter,) = publisher.dead_letters
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == (
        "t.batches.tiny.premium",
        0,
        7,
    )
    assert letter.error_class == "RuntimeError" and letter.service == "gpu_consumers"


def test_invalid_input_fails_at_once(tmp_path: Path) -> None:
    runner = FakeRunner(failures=[ValueError("width must be a positive multiple of 16, got 30")])
    waits: list[float] = []
    run, publisher = executor(runner, tmp_path, waits=waits)
    assert run.execute(pending(1)).failed == 1
    assert waits == []
    assert "width must be" in publisher.of(TaskFailed)[0].message


def test_stopping_during_backoff_hands_the_batch_back(tmp_path: Path) -> None:
    runner = FakeRunner(failures=[RuntimeError("flaky")])
    run, publisher = executor(runner, tmp_path, waits=[], stop=True)
    with pytest.raises(BatchHandedBack):
        run.execute(pending(1))
    assert publisher.confirmed == 0


def test_progress_is_throttled_but_the_last_step_always_reported() -> None:
    clock = iter([0.0, 0.1, 0.2, 0.6, 0.7, 0.8])
    throttle = ProgressThrottle(0.5, clock=lambda: next(clock))
    assert [throttle.due(step, 6) for step in range(1, 7)] == [True, False, False, True, False, True]
