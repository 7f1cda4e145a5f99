"""Errors of the GPU consumers."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.exceptions import StoreeError


class GpuConsumerError(StoreeError):
    """Base of the errors this package raises on purpose."""


class PoolConfigError(GpuConsumerError):
    """The pools file or variable is malformed, or names a pool that is not configured."""


class UnsupportedTask(GpuConsumerError):
    """A batch asks for a task type or parameters this pool's pipeline cannot run."""


class InvalidTask(GpuConsumerError):
    """A task this member refuses to run: an id that is not a safe path component, no room for its results."""


class PipelineLoadError(GpuConsumerError):
    """A pipeline could not be loaded from its model id or path."""


class ResultDeliveryError(GpuConsumerError):
    """Kafka did not acknowledge a batch's result events, so its offsets must not be committed."""


class ResultRefused(ResultDeliveryError):
    """Kafka refused some result records for good (too large, invalid): waiting cannot deliver them.

    ``task_ids`` names the tasks whose end events were refused, so the batch can fail them instead.
    """

    def __init__(self, message: str, task_ids: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.task_ids = frozenset(task_ids)


class KafkaClientBroken(GpuConsumerError):
    """A Kafka client hit a fatal error (fenced, broken idempotence): only a new process can recover."""


class BatchHandedBack(GpuConsumerError):
    """The consumer is stopping while the batch waits: leave it uncommitted for the next owner."""
