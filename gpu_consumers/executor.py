"""Runs one batch on the pipeline thread: expiry, the batched call, failures, outputs, result events.

Expired tasks end as TaskExpired without running. The live ones run in one call (in chunks of the
pool's ``max_batch_size``); out of memory splits a chunk in halves and runs each; invalid input fails
at once; any other error retries with backoff and jitter up to the policy's limit, then the tasks end
as TaskFailed and the batch record goes to the DLQ with the reason. Outputs are written atomically
under ``outputs/<story_id>/<task_id>.<ext>`` (a redo replaces them whole). :meth:`BatchExecutor.execute`
returns only once Kafka acknowledged every result event, so the caller may commit.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpu_consumers import results
from gpu_consumers.exceptions import GpuConsumerError, UnsupportedTask
from gpu_consumers.failures import RetryPolicy, error_class, is_out_of_memory, is_permanent
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.pipelines.batch import BatchRequest, BatchRunner, RenderedMedia, TaskInput
from gpu_consumers.publisher import ResultPublisher
from gpu_consumers.work import PendingBatch
from ops.storage import LocalStore
from schemas.dlq import dead_letter
from schemas.ids import now_ms
from schemas.records import BatchTask, OutputArtifact

log = logging.getLogger(__name__)

SERVICE = "gpu_consumers"
CONFIRM_TIMEOUT_S = 30.0


class BatchHandedBack(GpuConsumerError):
    """The consumer is stopping while the batch waits to retry: leave it uncommitted for the next owner."""


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What became of one batch."""

    batch_id: str
    completed: int
    failed: int
    expired: int
    pipeline_s: float
    overhead_s: float


@dataclass
class _Chunk:
    tasks: list[BatchTask]
    retries: int = 0


class ProgressThrottle:
    """Lets a progress report through at most every ``interval_s``, and always the last step."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last = float("-inf")

    def due(self, step: int, total: int) -> bool:
        now = self._clock()
        if step >= total or now - self._last >= self._interval:
            self._last = now
            return True
        return False


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
    ) -> None:
        self.runner = runner
        self.store = store
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

    def execute(self, pending: PendingBatch) -> BatchReport:
        """Run ``pending``'s batch and return once all its result events are acknowledged."""
        started = time.monotonic()
        batch = pending.batch
        counts: collections.Counter[str] = collections.Counter()
        pipeline_s = waited_s = 0.0
        first_error: BaseException | None = None

        live = self._expire(pending, batch.tasks, counts)
        self.metrics.batch_started(
            pending.tier.value, len(batch.tasks), (self._clock() - batch.event_time) / 1000
        )
        for task in live:
            self.publisher.event(results.started(batch, task, self.consumer_id, task.attempt))
        size = self.max_batch_size
        work = collections.deque(_Chunk(live[i : i + size]) for i in range(0, len(live), size))
        while work:
            chunk = work.popleft()
            if chunk.retries:
                chunk.tasks = self._expire(pending, chunk.tasks, counts)
                if not chunk.tasks:
                    continue
            with tempfile.TemporaryDirectory(prefix="storee-render-") as scratch:
                call_started = time.monotonic()
                try:
                    media = self._run(pending, chunk.tasks, Path(scratch))
                except Exception as exc:  # noqa: BLE001 - every pipeline failure is classified below
                    failure: Exception | None = exc
                else:
                    failure = None
                run_s = time.monotonic() - call_started
                pipeline_s += run_s
                if failure is None:
                    self.metrics.pipeline_ran(run_s)
                    self._complete(pending, chunk, media, run_s, counts)
                    continue
            error: Exception = failure
            self.metrics.failure(error_class(error))
            if is_out_of_memory(error) and len(chunk.tasks) > 1:
                half = len(chunk.tasks) // 2
                log.warning("out of memory, splitting batch_id=%s size=%d", batch.batch_id, len(chunk.tasks))
                self._free_memory()
                work.extendleft(
                    [_Chunk(chunk.tasks[half:], chunk.retries), _Chunk(chunk.tasks[:half], chunk.retries)]
                )
                continue
            if is_permanent(error) or chunk.retries >= self.policy.max_retries:
                log.error(
                    "batch failed batch_id=%s tasks=%d retries=%d error=%s: %s",
                    batch.batch_id,
                    len(chunk.tasks),
                    chunk.retries,
                    error_class(error),
                    error,
                )
                first_error = first_error or error
                self._fail(pending, chunk, error, counts)
                continue
            delay = self.policy.delay(chunk.retries + 1, self._rng)
            log.warning(
                "pipeline error, retrying batch_id=%s retry=%d in_s=%.2f error=%s: %s",
                batch.batch_id,
                chunk.retries + 1,
                delay,
                error_class(error),
                error,
            )
            wait_started = time.monotonic()
            if self._wait(delay):
                raise BatchHandedBack(f"stopping while batch {batch.batch_id} waited to retry") from error
            waited_s += time.monotonic() - wait_started
            chunk.retries += 1
            work.appendleft(chunk)

        if first_error is not None:
            self.publisher.dead_letter(
                dead_letter(
                    topic=pending.topic,
                    partition=pending.partition,
                    offset=pending.offset,
                    key=pending.key,
                    value=pending.value,
                    headers=pending.headers,
                    error=first_error,
                    service=SERVICE,
                )
            )
        self.publisher.confirm(CONFIRM_TIMEOUT_S)
        overhead = time.monotonic() - started - pipeline_s - waited_s
        self.metrics.batch_finished(overhead)
        for outcome in ("completed", "failed", "expired"):
            self.metrics.task_outcome(outcome, counts[outcome])
        log.info(
            "batch done batch_id=%s tier=%s topic=%s partition=%d offset=%d "
            "completed=%d failed=%d expired=%d pipeline_s=%.3f overhead_ms=%.1f",
            batch.batch_id,
            pending.tier.value,
            pending.topic,
            pending.partition,
            pending.offset,
            counts["completed"],
            counts["failed"],
            counts["expired"],
            pipeline_s,
            overhead * 1000,
        )
        return BatchReport(
            batch.batch_id, counts["completed"], counts["failed"], counts["expired"], pipeline_s, overhead
        )

    def _expire(
        self, pending: PendingBatch, tasks: Sequence[BatchTask], counts: collections.Counter[str]
    ) -> list[BatchTask]:
        """Emit TaskExpired for tasks past their deadline; return the others."""
        now = self._clock()
        live = []
        for task in tasks:
            deadline = results.deadline_of(task, pending.batch)
            if deadline is not None and deadline < now:
                self.publisher.event(results.expired(task, deadline))
                counts["expired"] += 1
                log.info(
                    "task expired task_id=%s deadline=%d late_ms=%d", task.task_id, deadline, now - deadline
                )
            else:
                live.append(task)
        return live

    def _run(self, pending: PendingBatch, tasks: list[BatchTask], scratch: Path) -> list[RenderedMedia]:
        batch = pending.batch
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
                    self.publisher.event(results.progress(batch, task, self.consumer_id, step, total))

        return self.runner.run(request, scratch, on_step)

    def _complete(
        self,
        pending: PendingBatch,
        chunk: _Chunk,
        media: list[RenderedMedia],
        run_s: float,
        counts: collections.Counter[str],
    ) -> None:
        batch = pending.batch
        for task, rendered in zip(chunk.tasks, media, strict=True):
            if rendered.task_id != task.task_id:
                raise GpuConsumerError(
                    f"runner returned {rendered.task_id} where {task.task_id} was expected"
                )
            artifact = self._store(task, rendered)
            self.publisher.event(
                results.completed(
                    batch,
                    task,
                    self.consumer_id,
                    attempt=task.attempt + chunk.retries,
                    output=artifact,
                    seed=rendered.seed,
                    run_ms=round(run_s * 1000),
                    gpu_seconds=run_s / len(chunk.tasks),
                )
            )
            counts["completed"] += 1

    def _store(self, task: BatchTask, rendered: RenderedMedia) -> OutputArtifact:
        data = rendered.path.read_bytes()
        key = f"outputs/{task.story_id}/{task.task_id}.{rendered.extension}"
        uri = self.store.put_bytes(key, data)
        return OutputArtifact(
            uri=uri,
            media_type=rendered.media_type,
            duration_s=rendered.duration_s,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )

    def _fail(
        self, pending: PendingBatch, chunk: _Chunk, error: BaseException, counts: collections.Counter[str]
    ) -> None:
        for task in chunk.tasks:
            self.publisher.event(
                results.failed(
                    pending.batch,
                    task,
                    self.consumer_id,
                    error_class=error_class(error),
                    message=str(error)[:2000] or error_class(error),
                    attempt=task.attempt + chunk.retries,
                )
            )
            counts["failed"] += 1

    def _free_memory(self) -> None:
        device = getattr(self.runner, "device", "cpu")
        if str(device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
