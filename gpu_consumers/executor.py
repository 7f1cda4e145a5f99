"""Runs one batch on the pipeline thread: triage, the batched call, failures, outputs, result events.

Triage, task by task, before anything runs: a task this member must not run (an id that is not a
safe path component, a sequence without room for its results: :mod:`gpu_consumers.admission`) fails
with the reason; a task of a cancelled story is skipped (no event: the job view marks it cancelled);
a task whose output is already stored intact (:mod:`gpu_consumers.manifests`) is not rendered again,
its TaskCompleted is re-emitted with ``run_ms`` 0; a task past its deadline ends as TaskExpired.

The live ones run in one call (in chunks of the pool's ``max_batch_size``). Before each chunk the
tasks of stories cancelled meanwhile are dropped, and a task cancelled while its chunk ran has its
output discarded. Out of memory splits a chunk in halves and runs each; invalid input fails at once;
any other pipeline error retries with backoff and jitter up to the policy's limit, then the tasks end
as TaskFailed and the batch record goes to the DLQ with the reason (:func:`gpu_consumers.recovery.decide`
decides, this module carries it out). Outputs are written atomically
under ``outputs/<story_id>/<task_id>.<ext>``, each followed by its manifest.

Isolation: any other exception while handling the batch (a store error, a runner bug, an event that
cannot be encoded, a record Kafka refuses) ends every task without an outcome yet as TaskFailed
(``retriable=False``, the reason in its message), sends the batch record to the DLQ and returns, so
the caller commits and takes the next batch. Only :class:`BatchHandedBack` (stopping) and
:class:`KafkaClientBroken` escape. :meth:`BatchExecutor.execute` returns only once Kafka acknowledged
every result event (waiting Kafka out if need be), so the caller may commit.
"""

from __future__ import annotations

import collections
import logging
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpu_consumers import results
from gpu_consumers.cancellations import Cancellations
from gpu_consumers.endings import CONFIRM_TIMEOUT_S, Endings
from gpu_consumers.exceptions import (
    BatchHandedBack,
    GpuConsumerError,
    KafkaClientBroken,
    ResultRefused,
    UnsupportedTask,
)
from gpu_consumers.failures import RetryPolicy, classify, error_class
from gpu_consumers.manifests import OutputStore
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.outcomes import BatchRun, TaskOutcome
from gpu_consumers.pipelines.batch import BatchRequest, BatchRunner, RenderedMedia, TaskInput
from gpu_consumers.progress import ProgressThrottle
from gpu_consumers.publisher import ResultPublisher
from gpu_consumers.recovery import Action, decide
from gpu_consumers.triage import Rerender, Triage, never_rerender
from gpu_consumers.work import PendingBatch, RejectedRecord
from ops.runtime.storage import LocalStore
from schemas.ids import now_ms
from schemas.records import BatchTask

__all__ = ["BatchExecutor", "BatchHandedBack", "BatchReport", "ProgressThrottle", "Rerender"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What became of one batch."""

    batch_id: str
    completed: int
    failed: int
    expired: int
    pipeline_s: float
    overhead_s: float
    cancelled: int = 0
    reused: int = 0
    aborted: bool = False


@dataclass
class _Chunk:
    tasks: list[BatchTask]
    retries: int = 0


class BatchExecutor:
    """Everything between "this batch is next" and "its results are durable"."""

    def __init__(
        self,
        runner: BatchRunner,
        store: LocalStore,
        publisher: ResultPublisher,
        metrics: ConsumerMetrics,
        *,
        consumer_id: str,
        max_batch_size: int,
        policy: RetryPolicy,
        progress_interval_s: float,
        wait: Callable[[float], bool],
        clock: Callable[[], int] = now_ms,
        rng: random.Random | None = None,
        cancellations: Cancellations | None = None,
        cancel_catchup_s: float = 60.0,
        rerender: Rerender = never_rerender,
    ) -> None:
        self.runner = runner
        self.outputs = OutputStore(store)
        self.publisher = publisher
        self.metrics = metrics
        self.consumer_id = consumer_id
        self.max_batch_size = max_batch_size
        self.policy = policy
        self.progress_interval_s = progress_interval_s
        # wait(seconds) sleeps and returns True if the consumer began stopping meanwhile.
        self._wait = wait
        self._clock = clock
        self._rng = rng or random.Random()
        self.endings = Endings(publisher, metrics, consumer_id)
        self.triage = Triage(
            publisher=publisher,
            endings=self.endings,
            outputs=self.outputs,
            consumer_id=consumer_id,
            clock=clock,
            wait=wait,
            cancellations=cancellations,
            cancel_catchup_s=cancel_catchup_s,
            rerender=rerender,
        )

    def close(self) -> None:
        """Finish the output writes in flight (the manifests) and stop the I/O threads."""
        self.outputs.close()

    def refuse(self, rejected: RejectedRecord) -> int:
        """End a record this member will not run (see :mod:`gpu_consumers.endings`)."""
        return self.endings.refuse(rejected)

    def execute(self, pending: PendingBatch) -> BatchReport:
        """Run ``pending``'s batch and return once all its result events are acknowledged."""
        batch = pending.batch
        self.triage.await_cancellations()
        run = BatchRun.of(pending)
        self.metrics.batch_started(
            pending.tier.value, len(batch.tasks), (self._clock() - batch.event_time) / 1000
        )
        try:
            self._handle(run)
            self.publisher.confirm(CONFIRM_TIMEOUT_S)
        except (BatchHandedBack, KafkaClientBroken):
            raise
        except Exception as exc:  # noqa: BLE001 - one batch's failure must never cost another batch
            self._abort(run, exc)
        return self._report(run)

    # -- the stages ---------------------------------------------------------------------------------

    def _handle(self, run: BatchRun) -> None:
        live = self.triage.before_batch(run)
        for task in live:
            self.publisher.event(results.started(run.batch, task, self.consumer_id, task.attempt))
        size = self.max_batch_size
        work = collections.deque(_Chunk(live[i : i + size]) for i in range(0, len(live), size))
        while work:
            chunk = work.popleft()
            chunk.tasks = self.triage.before_chunk(run, chunk.tasks, retry=chunk.retries > 0)
            if not chunk.tasks:
                continue
            failure = self._attempt(run, chunk)
            if failure is not None:
                self._pipeline_failed(run, chunk, failure, work)
        if run.first_error is not None:
            self.endings.dead_letter(run.pending, run.first_error)

    def _attempt(self, run: BatchRun, chunk: _Chunk) -> Exception | None:
        """Run ``chunk`` once and store its outputs; return the pipeline's error, if it raised one."""
        with tempfile.TemporaryDirectory(prefix="storee-render-") as scratch:
            call_started = time.monotonic()
            try:
                media = self._run(run, chunk.tasks, Path(scratch))
            except Exception as exc:  # noqa: BLE001 - every pipeline failure is decided on by the caller
                run.pipeline_s += time.monotonic() - call_started
                return exc
            run_s = time.monotonic() - call_started
            run.pipeline_s += run_s
            self.metrics.pipeline_ran(run_s)
            self._complete(run, chunk, media, run_s)
        return None

    def _run(self, run: BatchRun, tasks: list[BatchTask], scratch: Path) -> list[RenderedMedia]:
        batch = run.batch
        if batch.task_type not in self.runner.task_types:
            raise UnsupportedTask(f"this pool cannot run {batch.task_type.value} tasks")
        request = BatchRequest(
            tasks=tuple(
                TaskInput(
                    task_id=task.task_id,
                    prompt=task.prompt,
                    negative_prompt=results.negative_prompt_for(task, batch),
                    seed=results.seed_for(task, batch),
                )
                for task in tasks
            ),
            params=batch.params,
        )
        throttle = ProgressThrottle(self.progress_interval_s)

        def on_step(step: int, total: int) -> None:
            if throttle.due(step, total):
                for task in tasks:
                    if not self.triage.cancelled(task):
                        self.publisher.event(results.progress(batch, task, self.consumer_id, step, total))

        return self.runner.run(request, scratch, on_step)

    def _complete(self, run: BatchRun, chunk: _Chunk, media: list[RenderedMedia], run_s: float) -> None:
        batch = run.batch
        keep = []
        for task, rendered in zip(chunk.tasks, media, strict=True):
            if rendered.task_id != task.task_id:
                raise GpuConsumerError(
                    f"runner returned {rendered.task_id} where {task.task_id} was expected"
                )
            if self.triage.cancelled(task):
                self.triage.skip_cancelled(run, task, "while its chunk ran: output discarded")
            else:
                keep.append((task, rendered))
        saved = self.outputs.save_all(keep, batch_id=batch.batch_id, consumer_id=self.consumer_id)
        failure: Exception | None = None
        for (task, rendered), manifest in zip(keep, saved, strict=True):
            if isinstance(manifest, Exception):
                failure = failure or manifest
                continue
            self.publisher.event(
                results.completed(
                    batch,
                    task,
                    self.consumer_id,
                    attempt=task.attempt + chunk.retries,
                    output=manifest.artifact(),
                    seed=rendered.seed,
                    run_ms=round(run_s * 1000),
                    gpu_seconds=run_s / len(chunk.tasks),
                )
            )
            run.outcomes.end(task, TaskOutcome.COMPLETED)
        if failure is not None:
            raise failure  # the tasks it left without an outcome fail with it

    def _pipeline_failed(
        self, run: BatchRun, chunk: _Chunk, error: Exception, work: collections.deque[_Chunk]
    ) -> None:
        """Carry out what :func:`decide` says about a chunk whose pipeline call raised ``error``."""
        batch = run.batch
        self.metrics.failure(error_class(error))
        size = len(chunk.tasks)
        decision = decide(
            classify(error), size=size, retries=chunk.retries, max_retries=self.policy.max_retries
        )
        if decision.action is Action.SPLIT:
            log.warning("out of memory, splitting batch_id=%s size=%d", batch.batch_id, size)
            self._free_memory()
            first, second = chunk.tasks[: decision.half], chunk.tasks[decision.half :]
            work.extendleft([_Chunk(second, chunk.retries), _Chunk(first, chunk.retries)])
            return
        if decision.action is Action.FAIL:
            log.error(
                "batch failed batch_id=%s tasks=%d retries=%d error=%s: %s",
                batch.batch_id,
                size,
                chunk.retries,
                error_class(error),
                error,
            )
            run.first_error = run.first_error or error
            self.endings.fail(run.batch, chunk.tasks, error, retries=chunk.retries, outcomes=run.outcomes)
            return
        delay = self.policy.delay(decision.retry, self._rng)
        log.warning(
            "pipeline error, retrying batch_id=%s retry=%d in_s=%.2f error=%s: %s",
            batch.batch_id,
            decision.retry,
            delay,
            error_class(error),
            error,
        )
        wait_started = time.monotonic()
        if self._wait(delay):
            raise BatchHandedBack(f"stopping while batch {batch.batch_id} waited to retry") from error
        run.waited_s += time.monotonic() - wait_started
        chunk.retries = decision.retry
        work.appendleft(chunk)

    def _abort(self, run: BatchRun, error: Exception) -> None:
        """Handling the batch failed: fail its open tasks, dead-letter it, deliver, and carry on."""
        batch = run.batch
        if isinstance(error, ResultRefused):
            run.outcomes.reopen(error.task_ids)
        run.aborted = True
        open_tasks = run.outcomes.open()
        log.error(
            "batch aborted batch_id=%s topic=%s partition=%d offset=%d open_tasks=%d error=%s: %s",
            batch.batch_id,
            run.pending.topic,
            run.pending.partition,
            run.pending.offset,
            len(open_tasks),
            error_class(error),
            error,
            exc_info=not isinstance(error, ResultRefused),
        )
        self.metrics.batch_aborted(error_class(error))
        context = f"batch {batch.batch_id} could not be processed"
        self.endings.fail(batch, open_tasks, error, context=context, outcomes=run.outcomes)
        self.endings.dead_letter(run.pending, error)
        self.endings.deliver(batch.batch_id)

    def _report(self, run: BatchRun) -> BatchReport:
        batch, pending = run.batch, run.pending
        counts = run.outcomes.counts()
        overhead = time.monotonic() - run.started - run.pipeline_s - run.waited_s
        self.metrics.batch_finished(overhead)
        for outcome in TaskOutcome:
            self.metrics.task_outcome(outcome, counts[outcome])
        log.info(
            "batch done batch_id=%s tier=%s topic=%s partition=%d offset=%d completed=%d reused=%d "
            "failed=%d expired=%d cancelled=%d aborted=%s pipeline_s=%.3f overhead_ms=%.1f",
            batch.batch_id,
            pending.tier.value,
            pending.topic,
            pending.partition,
            pending.offset,
            counts[TaskOutcome.COMPLETED],
            counts[TaskOutcome.REUSED],
            counts[TaskOutcome.FAILED],
            counts[TaskOutcome.EXPIRED],
            counts[TaskOutcome.CANCELLED],
            run.aborted,
            run.pipeline_s,
            overhead * 1000,
        )
        return BatchReport(
            batch.batch_id,
            counts[TaskOutcome.COMPLETED],
            counts[TaskOutcome.FAILED],
            counts[TaskOutcome.EXPIRED],
            run.pipeline_s,
            overhead,
            cancelled=counts[TaskOutcome.CANCELLED],
            reused=counts[TaskOutcome.REUSED],
            aborted=run.aborted,
        )

    def _free_memory(self) -> None:
        device = getattr(self.runner, "device", "cpu")
        if str(device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
