"""The batch executor with a fake runner and publisher: expiry, OOM splits, retries, dead letters and
per-batch isolation (unsafe ids, cancellations and stored outputs are in ``test_triage.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_consumers.exceptions import ResultRefused
from gpu_consumers.executor import BatchHandedBack, ProgressThrottle
from ops.runtime.storage import LocalStore
from schemas.events import TaskCompleted, TaskExpired, TaskFailed, TaskProgress, TaskStarted
from tests.gpu_consumers.executors import NOW, FakeRunner, executor, pending


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


# -- per-batch isolation ----------------------------------------------------------------------------


class FailingStore(LocalStore):
    """A store whose writes of one key raise (a full disk, a broken mount)."""

    def __init__(self, root: Path, failing_key: str) -> None:
        super().__init__(root)
        self.failing_key = failing_key

    def put_bytes(self, key: str, data: bytes) -> str:
        if key == self.failing_key:
            raise OSError(28, "No space left on device")
        return super().put_bytes(key, data)


def test_an_exception_after_the_render_fails_the_open_tasks_and_dead_letters_the_batch(
    tmp_path: Path,
) -> None:
    item = pending(3)
    broken = item.batch.tasks[1]
    store = FailingStore(tmp_path, f"outputs/{broken.story_id}/{broken.task_id}.mp4")
    run, publisher = executor(FakeRunner(), tmp_path, store=store)
    report = run.execute(item)
    assert report.aborted and (report.completed, report.failed) == (2, 1)
    assert {c.task_id for c in publisher.of(TaskCompleted)} == {
        item.batch.tasks[0].task_id,
        item.batch.tasks[2].task_id,
    }
    (failed,) = publisher.of(TaskFailed)
    assert failed.task_id == broken.task_id
    assert failed.error_class == "OSError" and failed.retriable is False
    assert f"batch {item.batch.batch_id} could not be processed" in failed.message
    assert "No space left on device" in failed.message
    (letter,) = publisher.dead_letters
    assert letter.error_class == "OSError" and letter.origin_offset == 7
    assert publisher.confirmed == len(publisher.events)  # delivered before the caller commits
    assert run.metrics.count("storee_gpu_batches_aborted_total", error_class="OSError") == 1


def test_a_runner_returning_another_task_aborts_only_that_batch(tmp_path: Path) -> None:
    runner = FakeRunner()
    runner.swap_ids = True
    run, publisher = executor(runner, tmp_path)
    report = run.execute(pending(2))
    assert report.aborted and report.failed == 2
    assert {f.error_class for f in publisher.of(TaskFailed)} == {"GpuConsumerError"}
    assert "where" in publisher.of(TaskFailed)[0].message
    runner.swap_ids = False
    assert run.execute(pending(2)).completed == 2  # the next batch runs as usual


def test_a_result_refused_by_kafka_fails_its_task_after_all(tmp_path: Path) -> None:
    run, publisher = executor(FakeRunner(), tmp_path)
    item = pending(2)
    first = item.batch.tasks[0].task_id
    publisher.refuse.append(ResultRefused("Kafka refused 1 result records: too large", task_ids=[first]))
    report = run.execute(item)
    assert report.aborted
    assert [f.task_id for f in publisher.of(TaskFailed)] == [first]
    assert publisher.of(TaskFailed)[0].error_class == "ResultRefused"
