"""How work that cannot run ends: TaskFailed for each of its tasks, the record to the DLQ, delivered.

Used for a batch whose handling failed part-way (its tasks without an outcome yet), for a record the
member will not run at all (another pool's batch, a task type it cannot run, a batch breaking the
contract), and for tasks refused one by one. Every TaskFailed carries ``retriable=False`` and a
message the story's owner can read; building one event cannot stop the others, and a DLQ record or
failure Kafka refuses for good is logged and given up on, so ending a batch always ends: the caller
commits its offset and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from gpu_consumers import results
from gpu_consumers.exceptions import ResultRefused
from gpu_consumers.failures import error_class
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.outcomes import BatchOutcomes, TaskOutcome
from gpu_consumers.publisher import ResultPublisher
from gpu_consumers.work import PendingBatch, RejectedRecord
from schemas.dlq import dead_letter
from schemas.events import BatchReady
from schemas.records import BatchTask

log = logging.getLogger(__name__)

SERVICE = "gpu_consumers"
CONFIRM_TIMEOUT_S = 30.0
MAX_MESSAGE_CHARS = 2000


def owner_message(error: BaseException, context: str | None = None) -> str:
    """The TaskFailed message: what went wrong, in words, bounded."""
    text = str(error) or error_class(error)
    if context:
        text = f"{context}: {text}"
    return text[:MAX_MESSAGE_CHARS]


class Endings:
    """Fails tasks and dead-letters records through one publisher."""

    def __init__(self, publisher: ResultPublisher, metrics: ConsumerMetrics, consumer_id: str) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.consumer_id = consumer_id

    def fail(
        self,
        batch: BatchReady,
        tasks: Iterable[BatchTask],
        error: BaseException,
        *,
        context: str | None = None,
        retries: int = 0,
        outcomes: BatchOutcomes | None = None,
    ) -> list[BatchTask]:
        """Emit TaskFailed for each of ``tasks`` (marked failed in ``outcomes``); return those emitted."""
        failed = []
        for task in tasks:
            try:
                self.publisher.event(
                    results.failed(
                        batch,
                        task,
                        self.consumer_id,
                        error_class=error_class(error),
                        message=owner_message(error, context),
                        attempt=task.attempt + retries,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - one task's broken event must not keep the others open
                log.error(
                    "cannot build TaskFailed task_id=%s error=%s: %s", task.task_id, error_class(exc), exc
                )
                continue
            failed.append(task)
            if outcomes is not None:
                outcomes.end(task, TaskOutcome.FAILED)
        return failed

    def dead_letter(self, source: PendingBatch | RejectedRecord, error: BaseException) -> None:
        self.publisher.dead_letter(
            dead_letter(
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
                key=source.key,
                value=source.value,
                headers=source.headers,
                error=error,
                service=SERVICE,
            )
        )

    def deliver(self, label: str) -> None:
        """Wait until the failures and the dead letter are acknowledged; give up on what Kafka refuses."""
        try:
            self.publisher.confirm(CONFIRM_TIMEOUT_S)
        except ResultRefused as exc:
            log.error("Kafka refused the failure records, giving up on them batch=%s error=%s", label, exc)

    def refuse(self, rejected: RejectedRecord) -> int:
        """End a record the member will not run; return how many tasks it failed."""
        self.metrics.record_refused(rejected.reason)
        failed: list[BatchTask] = []
        if rejected.batch is not None:
            failed = self.fail(rejected.batch, rejected.batch.tasks, rejected.error)
            self.metrics.task_outcome(TaskOutcome.FAILED, len(failed))
        self.dead_letter(rejected, rejected.error)
        self.deliver(rejected.label)
        log.warning(
            "record refused topic=%s partition=%d offset=%d reason=%s tasks_failed=%d error=%s",
            rejected.topic,
            rejected.partition,
            rejected.offset,
            rejected.reason,
            len(failed),
            rejected.error,
        )
        return len(failed)
