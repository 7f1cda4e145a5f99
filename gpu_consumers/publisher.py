"""Result events and dead letters out, with a check that Kafka acknowledged every one of them.

A batch's offsets are committed only after :meth:`ResultPublisher.confirm` returned: every record
produced since the last confirm was acknowledged (``acks=all``). Progress events go through the same
path but a lost one is harmless; only the confirm makes the batch's results durable.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaError, Message

from gpu_consumers.exceptions import ResultDeliveryError
from ops.kafka import DurableProducer
from schemas.codec import Codec
from schemas.dlq import DeadLetterRecord
from schemas.events import Event

log = logging.getLogger(__name__)


class ResultPublisher:
    """Produces to ``task.events`` and the DLQ and tracks the delivery reports."""

    def __init__(self, producer: DurableProducer, codec: Codec, *, task_events: str, dlq: str) -> None:
        self._producer = producer
        self._codec = codec
        self._task_events = task_events
        self._dlq = dlq
        self._lock = threading.Lock()
        self._outstanding = 0
        self._errors: list[str] = []

    def event(self, event: Event) -> None:
        """Produce a task event keyed by its story (every task event carries ``story_id``)."""
        key = getattr(event, "story_id")  # noqa: B009 - Event itself has no story_id; task events do
        self._produce(self._task_events, self._codec.encode(event), key.encode("utf-8"), None)

    def dead_letter(self, record: DeadLetterRecord) -> None:
        self._produce(self._dlq, record.value or b"", record.key, record.headers)

    def dead_letter_sync(self, record: DeadLetterRecord, timeout: float = 30.0) -> None:
        """Produce a dead letter from the polling thread and wait for its acknowledgement."""
        self._producer.produce_sync(
            self._dlq, record.value or b"", key=record.key, headers=record.headers, timeout=timeout
        )

    def confirm(self, timeout: float) -> None:
        """Wait until every record produced so far is acknowledged; raise if any was not."""
        self._producer.flush(timeout)
        with self._lock:
            outstanding, errors = self._outstanding, self._errors
            self._errors = []
        if errors:
            raise ResultDeliveryError(f"{len(errors)} result records refused: {errors[0]}")
        if outstanding:
            raise ResultDeliveryError(f"{outstanding} result records not acknowledged within {timeout:.0f}s")

    def _produce(self, topic: str, value: bytes, key: bytes | None, headers: list | None) -> None:
        with self._lock:
            self._outstanding += 1
        try:
            self._producer.produce(topic, value, key=key, headers=headers, on_delivery=self._delivered)
        except BaseException:
            with self._lock:
                self._outstanding -= 1
            raise

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            self._outstanding -= 1
            if error is not None:
                self._errors.append(f"{message.topic()}: {error.str()}")
        if error is None:
            log.debug(
                "delivered topic=%s partition=%s offset=%s",
                message.topic(),
                message.partition(),
                message.offset(),
            )
