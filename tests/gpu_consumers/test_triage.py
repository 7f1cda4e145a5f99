"""What the executor decides before a task runs, through a fake runner and publisher: ids that are not
safe path components, sequences without room, cancelled stories, and stored outputs that are not
rendered again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gpu_consumers.executor import BatchHandedBack
from gpu_consumers.manifests import OutputStore
from gpu_consumers.pipelines.batch import RenderedMedia
from gpu_consumers.rerender import RerenderRequests, request_for, write_request
from ops.runtime.storage import LocalStore
from schemas.codec import Codec
from schemas.events import TaskCompleted, TaskExpired, TaskFailed, TaskStarted
from schemas.records import Tier
from tests.gpu_consumers.executors import (
    NOW,
    Cancelled,
    FakeRunner,
    executor,
    pending,
    task_like,
    with_tasks,
    wrap,
)
from tests.gpu_consumers.helpers import make_batch, mixed_batch

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
    run, publisher = executor(runner, tmp_path, rerender=lambda pending, task: True)
    item = pending(1)
    run.execute(item)
    report = run.execute(item)
    assert (report.completed, report.reused) == (1, 0)
    assert len(runner.calls) == 2
    first, again = publisher.of(TaskCompleted)
    assert again.event_id != first.event_id and again.attempt == first.attempt


def test_a_task_rendered_again_on_request_is_not_expired_by_its_deadline(tmp_path: Path) -> None:
    runner = FakeRunner()
    run, publisher = executor(runner, tmp_path, rerender=lambda pending, task: True)
    item = wrap(make_batch(["a fox"], deadline=NOW - 1))  # met once; the operator asks for a new render
    assert run.execute(item).completed == 1
    assert not publisher.of(TaskExpired)


def test_a_request_renders_only_the_batch_records_it_covers(tmp_path: Path) -> None:
    runner = FakeRunner()
    store = LocalStore(tmp_path)
    covered = pending(1)  # t.batches.tiny.premium[0]@7
    group = "t.gpu-consumers.tiny.premium"
    hook = RerenderRequests(store, {Tier.PREMIUM: group}, refresh_s=0, clock=lambda: NOW)
    run, _ = executor(runner, tmp_path, store=store, rerender=hook)
    other = dataclasses.replace(pending(1), offset=8)
    run.execute(covered)
    run.execute(other)
    assert len(runner.calls) == 2
    write_request(store, request_for(group, [(covered.topic, 0, 7, 7)], now=NOW, ttl_ms=60_000))
    assert run.execute(covered).completed == 1  # inside the window: rendered again
    assert run.execute(other).reused == 1  # outside: announced from its manifest
    assert len(runner.calls) == 3
