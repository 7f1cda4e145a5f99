"""The end-to-end probe's tasks end without a render; users' tasks in the same batch run as before."""

from __future__ import annotations

from pathlib import Path

from gpu_consumers.probes import PROBE_MEDIA_TYPE, probe_events
from schemas.codec import Codec
from schemas.contract import check
from schemas.events import TaskCompleted, TaskStarted
from schemas.ids import PROBE_ACCOUNT, PROBE_STORY_PREFIX
from tests.gpu_consumers.executors import FakeRunner, executor, wrap
from tests.gpu_consumers.helpers import mixed_batch

PROBE = PROBE_STORY_PREFIX + "premium-1"


def _batch():  # type: ignore[no-untyped-def]
    import dataclasses

    batch = mixed_batch({"user-story": ["u0", "u1"], PROBE: ["probe"]})
    tasks = tuple(
        dataclasses.replace(t, account_id=PROBE_ACCOUNT) if t.story_id == PROBE else t for t in batch.tasks
    )
    return dataclasses.replace(batch, tasks=tasks)


def test_a_probe_task_is_never_rendered_and_users_tasks_are(tmp_path: Path) -> None:
    runner = FakeRunner()
    batch = _batch()
    run, publisher = executor(runner, tmp_path)
    report = run.execute(wrap(batch))
    assert runner.calls == [["user-story:0", "user-story:1"]]
    assert (report.completed, report.failed, report.expired) == (2, 0, 0)
    started = {e.task_id for e in publisher.of(TaskStarted)}
    completed = {e.task_id: e for e in publisher.of(TaskCompleted)}
    assert started == set(completed) == {"user-story:0", "user-story:1", f"{PROBE}:0"}
    probe = completed[f"{PROBE}:0"]
    assert probe.gpu_seconds == 0.0 and probe.run_ms == 0
    assert [o.media_type for o in probe.outputs] == [PROBE_MEDIA_TYPE]
    assert all(
        o.media_type != PROBE_MEDIA_TYPE for e in completed.values() if e is not probe for o in e.outputs
    )
    run.close()
    assert not list(tmp_path.rglob(f"{PROBE}*")), "nothing is stored for a probe"


def test_probe_events_keep_the_contract_and_the_render_sequences() -> None:
    batch = _batch()
    task = batch.tasks[-1]
    started, completed = probe_events(batch, task, "host/1/cpu")
    codec = Codec()
    for event in (started, completed):
        check(codec.decode(codec.encode(event)))
    assert started.sequence < completed.sequence
    assert completed.outputs[0].uri == f"probe://{task.task_id}"
