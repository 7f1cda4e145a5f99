"""The batch executor with a fake runner and publisher: expiry, OOM splits, retries, dead letters,
per-batch isolation, unsafe ids, cancellations and stored outputs that are not rendered again."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_consumers.exceptions import ResultRefused
from gpu_consumers.executor import BatchExecutor, BatchHandedBack, ProgressThrottle
from gpu_consumers.failures import RetryPolicy
from gpu_consumers.manifests import OutputStore
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.pipelines.batch import BatchRequest, RenderedMedia, StepCallback
from gpu_consumers.work import PendingBatch
from ops.runtime.storage import LocalStore
from schemas.codec import Codec
from schemas.dlq import DeadLetter
from schemas.events import (
    BatchReady,
    Event,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskStarted,
)
from schemas.ids import now_ms
from schemas.records import BatchTask, TaskType, Tier
from tests.gpu_consumers.helpers import make_batch, mixed_batch

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


# -- path safety --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"story_id": "..", "task_id": "..:0"}, "story_id '..' is not a safe path component"),
        ({"task_id": "s:../../../escape"}, "task_id 's:../../../escape' is not a safe path component"),
        ({"story_id": "a/b", "task_id": "a/b:0"}, "story_id 'a/b' is not a safe path component"),
        ({"task_id": ".hidden:0"}, "is not a safe path component"),
        ({"task_id": ""}, "task_id is empty"),
    ],
)
def test_ids_that_are_not_safe_path_components_fail_their_task_and_write_nothing(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    root = tmp_path / "store"
    runner = FakeRunner()
    good = make_batch(["a fox"])
    bad = task_like(good, scene_index=1, **changes)
    run, publisher = executor(runner, root)
    report = run.execute(wrap(with_tasks(good, bad)))
    assert runner.calls == [[good.tasks[0].task_id]]  # the bad task never reaches the pipeline
    assert (report.completed, report.failed) == (1, 1)
    (failed,) = publisher.of(TaskFailed)
    assert failed.task_id == bad.task_id and failed.error_class == "InvalidTask"
    assert message in failed.message
    assert publisher.dead_letters[0].error_class == "gpu_consumers.exceptions.InvalidTask"
    # Nothing but the good task's clip and manifest was written, and nothing outside the store.
    run.close()  # the manifests are written after the clips, in the background
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    story = good.tasks[0].story_id
    assert written == [f"store/outputs/{story}/{story}:0.json", f"store/outputs/{story}/{story}:0.mp4"]


def test_a_sequence_without_room_for_its_results_fails_that_task(tmp_path: Path) -> None:
    good = make_batch(["a fox"])
    late = task_like(good, scene_index=1, task_id=f"{good.tasks[0].story_id}:1", sequence=2**63 - 2)
    run, publisher = executor(FakeRunner(), tmp_path)
    report = run.execute(wrap(with_tasks(good, late)))
    assert (report.completed, report.failed) == (1, 1)
    (failed,) = publisher.of(TaskFailed)
    assert "leaves no room for its result events" in failed.message
    assert failed.sequence == 2**53  # the highest the contract allows: it beats any earlier state
    Codec().encode(failed)  # the refusal itself can always be encoded


# -- cancellations ------------------------------------------------------------------------------------


def test_tasks_of_cancelled_stories_are_dropped_before_the_batch_runs(tmp_path: Path) -> None:
    runner = FakeRunner()
    batch = mixed_batch({"story-a": ["a0", "a1"], "story-b": ["b0"]})
    run, publisher = executor(runner, tmp_path, cancellations=Cancelled("story-a"))
    report = run.execute(wrap(batch))
    assert runner.calls == [["story-b:0"]]
    assert (report.completed, report.cancelled) == (1, 2)
    # A skipped task needs no event: the job view marks the tasks of a cancelled story itself.
    assert {getattr(e, "story_id", None) for e in publisher.events} == {"story-b"}
    assert run.metrics.count("storee_gpu_tasks_total", outcome="cancelled") == 2


def test_a_story_cancelled_while_its_chunk_runs_keeps_no_output_and_starts_no_more_chunks(
    tmp_path: Path,
) -> None:
    runner = FakeRunner()
    cancelled = Cancelled()
    runner.before_output = lambda request: cancelled.ids.add("story-b")
    batch = mixed_batch({"story-a": ["a0"], "story-b": ["b0", "b1"]})
    run, publisher = executor(runner, tmp_path, max_batch_size=2, cancellations=cancelled)
    report = run.execute(wrap(batch))
    assert runner.calls == [["story-a:0", "story-b:0"]]  # b1's chunk never started
    assert [c.task_id for c in publisher.of(TaskCompleted)] == ["story-a:0"]
    assert (report.completed, report.cancelled, report.failed) == (1, 2, 0)
    assert not (tmp_path / "outputs" / "story-b").exists()  # b0's render was discarded, not stored


def test_the_first_batch_waits_for_the_recent_cancellations_but_not_forever(tmp_path: Path) -> None:
    run, _ = executor(FakeRunner(), tmp_path, cancellations=Cancelled(caught_up=False), cancel_catchup_s=0.05)
    assert run.execute(pending(1)).completed == 1
    stopping, _ = executor(FakeRunner(), tmp_path, stop=True, cancellations=Cancelled(caught_up=False))
    with pytest.raises(BatchHandedBack):
        stopping.execute(pending(1))


# -- stored outputs are not rendered again ------------------------------------------------------------


def test_a_replayed_batch_is_not_rendered_again_and_its_completions_are_re_emitted(tmp_path: Path) -> None:
    runner = FakeRunner()
    run, publisher = executor(runner, tmp_path)
    item = pending(2)
    run.execute(item)
    first = publisher.of(TaskCompleted)
    publisher.events.clear()
    report = run.execute(item)
    assert len(runner.calls) == 1
    assert (report.reused, report.completed) == (2, 0)
    again = publisher.of(TaskCompleted)
    assert [c.outputs for c in again] == [c.outputs for c in first]
    assert [c.seed for c in again] == [c.seed for c in first]
    assert {(c.run_ms, c.gpu_seconds) for c in again} == {(0, 0.0)}
    assert publisher.of(TaskStarted) == []
    assert run.metrics.count("storee_gpu_tasks_total", outcome="reused") == 2


def test_an_output_stored_but_never_announced_is_announced_without_rendering(tmp_path: Path) -> None:
    # A crash between storing the output and publishing TaskCompleted leaves exactly this behind.
    item = pending(1)
    task = item.batch.tasks[0]
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"video rendered before the crash")
    OutputStore(LocalStore(tmp_path)).save(
        task,
        RenderedMedia(task.task_id, clip, "video/mp4", "mp4", 1.0, 1000),
        batch_id="b-x",
        consumer_id="c",
    )
    runner = FakeRunner()
    run, publisher = executor(runner, tmp_path)
    assert run.execute(item).reused == 1
    assert runner.calls == []
    (completion,) = publisher.of(TaskCompleted)
    assert completion.outputs[0].size_bytes == len(b"video rendered before the crash")


def test_a_changed_or_missing_output_is_rendered_again(tmp_path: Path) -> None:
    runner = FakeRunner()
    run, publisher = executor(runner, tmp_path)
    item = pending(2)
    run.execute(item)
    store = LocalStore(tmp_path)
    paths = [store.local_path(c.outputs[0].uri) for c in publisher.of(TaskCompleted)]
    paths[0].write_bytes(b"truncated")
    report = run.execute(item)
    assert runner.calls[-1] == [item.batch.tasks[0].task_id]
    assert (report.completed, report.reused) == (1, 1)


def test_the_rerender_hook_renders_a_stored_task_again(tmp_path: Path) -> None:
    runner = FakeRunner()
    run, _ = executor(runner, tmp_path, rerender=lambda batch, task: True)
    item = pending(1)
    run.execute(item)
    assert run.execute(item).completed == 1
    assert len(runner.calls) == 2
