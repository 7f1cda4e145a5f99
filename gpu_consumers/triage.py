"""What of a batch needs no render: refused, cancelled, already completed or expired tasks.

Run before a batch's pipeline call, and the cancelled and expiry checks again before each chunk:

* refused: an id that is not a safe path component, or a sequence without room for its results
  (:mod:`gpu_consumers.admission`) ends as TaskFailed with the reason, and the batch record goes to
  the DLQ;
* cancelled: a task of a story the watcher saw cancelled is skipped without an event (the job view
  marks the tasks of a cancelled story cancelled); logged and counted;
* already completed: a task whose output and manifest are stored intact is not rendered again; its
  TaskCompleted is re-emitted from the manifest (``run_ms`` 0, ``gpu_seconds`` 0), which also heals a
  crash between storing and publishing; counted as ``reused``. Unless the ``rerender`` hook says the
  batch record is covered by an operator's re-render request (:mod:`gpu_consumers.rerender`): then
  the task is rendered again whatever is stored, and its deadline is not checked (it was met once;
  the operator asked for this render);
* expired: a task past its deadline ends as TaskExpired;
* probes: a task of the end-to-end probe ends at once with TaskStarted and TaskCompleted, no render
  (:mod:`gpu_consumers.probes`); counted as ``probe``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from gpu_consumers import probes, results
from gpu_consumers.admission import task_problem
from gpu_consumers.cancellations import Cancellations, NoCancellations
from gpu_consumers.endings import Endings
from gpu_consumers.exceptions import BatchHandedBack
from gpu_consumers.manifests import Manifest, OutputStore
from gpu_consumers.outcomes import BatchRun, TaskOutcome
from gpu_consumers.publisher import ResultPublisher
from gpu_consumers.work import PendingBatch
from schemas.records import BatchTask

log = logging.getLogger(__name__)

# Whether to render a task of this batch record again although its output is stored: an operator's
# re-render request (gpu_consumers.rerender.RerenderRequests). The default never does.
Rerender = Callable[[PendingBatch, BatchTask], bool]


def never_rerender(pending: PendingBatch, task: BatchTask) -> bool:
    return False


class Triage:
    """Ends the tasks of a batch that need no render and returns the others."""

    def __init__(
        self,
        *,
        publisher: ResultPublisher,
        endings: Endings,
        outputs: OutputStore,
        consumer_id: str,
        clock: Callable[[], int],
        wait: Callable[[float], bool],
        cancellations: Cancellations | None = None,
        cancel_catchup_s: float = 60.0,
        rerender: Rerender = never_rerender,
    ) -> None:
        self.publisher = publisher
        self.endings = endings
        self.outputs = outputs
        self.consumer_id = consumer_id
        self._clock = clock
        self._wait = wait
        self.cancellations = cancellations or NoCancellations()
        self._cancel_catchup_s = cancel_catchup_s
        self._cancellations_read = False
        self._rerender = rerender

    def before_batch(self, run: BatchRun) -> list[BatchTask]:
        """Triage every task of the batch; return the live ones, in order."""
        candidates = []
        for task in run.batch.tasks:
            problem = task_problem(task)
            if problem is not None:
                log.warning(
                    "task refused task_id=%r batch_id=%s: %s", task.task_id, run.batch.batch_id, problem
                )
                self.endings.fail(run.batch, [task], problem, outcomes=run.outcomes)
                run.first_error = run.first_error or problem
            elif self.cancelled(task):
                self.skip_cancelled(run, task, "before the batch ran")
            elif probes.is_probe(task):
                self._end_probe(run, task)
            else:
                candidates.append(task)
        again = {task.task_id for task in candidates if self._rerender(run.pending, task)}
        lookups = [task for task in candidates if task.task_id not in again]
        stored = dict(zip((task.task_id for task in lookups), self.outputs.find_all(lookups), strict=True))
        now = self._clock()
        live = []
        for task in candidates:
            manifest = stored.get(task.task_id)
            if task.task_id in again:
                live.append(task)
            elif manifest is not None:
                self._announce(run, task, manifest)
            elif (deadline := results.deadline_of(task, run.batch)) is not None and deadline < now:
                self._expire_one(run, task, deadline, now)
            else:
                live.append(task)
        return live

    def before_chunk(self, run: BatchRun, tasks: Sequence[BatchTask], *, retry: bool) -> list[BatchTask]:
        """Drop the tasks cancelled since the batch started (and, on a retry, the expired ones)."""
        live = []
        now = self._clock()
        for task in tasks:
            if self.cancelled(task):
                self.skip_cancelled(run, task, "before its chunk ran")
            elif (
                retry
                and (deadline := results.deadline_of(task, run.batch)) is not None
                and deadline < now
                and not self._rerender(run.pending, task)
            ):
                self._expire_one(run, task, deadline, now)
            else:
                live.append(task)
        return live

    def cancelled(self, task: BatchTask) -> bool:
        return self.cancellations.is_cancelled(task.story_id)

    def skip_cancelled(self, run: BatchRun, task: BatchTask, when: str) -> None:
        run.outcomes.end(task, TaskOutcome.CANCELLED)
        log.info(
            "task skipped, story cancelled task_id=%s story_id=%s batch_id=%s when=%r",
            task.task_id,
            task.story_id,
            run.batch.batch_id,
            when,
        )

    def await_cancellations(self) -> None:
        """Before the first batch, let the watcher read the recent cancels (bounded wait)."""
        if self._cancellations_read:
            return
        deadline = time.monotonic() + self._cancel_catchup_s
        while not self.cancellations.wait_caught_up(min(0.5, max(0.0, deadline - time.monotonic()))):
            if self._wait(0):
                raise BatchHandedBack("stopping while the recent cancellations were read")
            if time.monotonic() >= deadline:
                log.warning(
                    "cancellations not read to the end after %.0fs, running batches anyway",
                    self._cancel_catchup_s,
                )
                break
        self._cancellations_read = True

    def _announce(self, run: BatchRun, task: BatchTask, manifest: Manifest) -> None:
        """Re-emit the TaskCompleted of a task whose output is already stored intact."""
        seed = manifest.seed if manifest.seed is not None else results.seed_for(task, run.batch)
        self.publisher.event(
            results.completed(
                run.batch,
                task,
                self.consumer_id,
                attempt=task.attempt,
                output=manifest.artifact(),
                seed=seed,
                run_ms=0,
                gpu_seconds=0.0,
            )
        )
        run.outcomes.end(task, TaskOutcome.REUSED)
        log.info(
            "task already completed, not rendered again task_id=%s batch_id=%s first_batch_id=%s",
            task.task_id,
            run.batch.batch_id,
            manifest.batch_id,
        )

    def _end_probe(self, run: BatchRun, task: BatchTask) -> None:
        for event in probes.probe_events(run.batch, task, self.consumer_id):
            self.publisher.event(event)
        run.outcomes.end(task, TaskOutcome.PROBE)
        log.debug(
            "probe task ended without a render task_id=%s batch_id=%s", task.task_id, run.batch.batch_id
        )

    def _expire_one(self, run: BatchRun, task: BatchTask, deadline: int, now: int) -> None:
        self.publisher.event(results.expired(task, deadline))
        run.outcomes.end(task, TaskOutcome.EXPIRED)
        log.info("task expired task_id=%s deadline=%d late_ms=%d", task.task_id, deadline, now - deadline)
