"""Errors of the GPU consumers."""

from __future__ import annotations

from schemas.exceptions import StoreeError


class GpuConsumerError(StoreeError):
    """Base of the errors this package raises on purpose."""


class PoolConfigError(GpuConsumerError):
    """The pools file or variable is malformed, or names a pool that is not configured."""


class UnsupportedTask(GpuConsumerError):
    """A batch asks for a task type or parameters this pool's pipeline cannot run."""


class PipelineLoadError(GpuConsumerError):
    """A pipeline could not be loaded from its model id or path."""


class ResultDeliveryError(GpuConsumerError):
    """Kafka did not acknowledge a batch's result events, so its offsets must not be committed."""
