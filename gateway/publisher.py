"""Publishing events from the event loop without blocking it.

An :class:`~ops.runtime.async_producer.AsyncProducer` (one durable producer per process, its delivery
reports settling one future per record): :meth:`EventPublisher.publish` returns only once Kafka
acknowledged the record, which is what lets the gateway answer 202.

librdkafka's ``message.timeout.ms`` is set to the publish timeout, so a record that cannot be delivered
is reported failed *before* the caller stops waiting: the gateway then says 503 about a record that
will not appear later. The extra wait margin only covers a report that arrives late.
"""

from __future__ import annotations

import asyncio
import logging
import time

from confluent_kafka import Message

from ops.runtime.async_producer import AsyncProducer
from ops.runtime.kafka import DeliveryFailed, DurableProducer, KafkaUnavailable
from schemas.codec import Codec
from schemas.events import Event

log = logging.getLogger(__name__)

_REPORT_MARGIN_S = 2.0


class PublishFailed(Exception):
    """Kafka did not acknowledge the record; the message says why."""


class EventPublisher:
    """Encodes events with the codec and produces them, awaiting each delivery report."""

    def __init__(self, bootstrap_servers: str, *, timeout_s: float, codec: Codec | None = None) -> None:
        self.timeout_s = timeout_s
        self.codec = codec or Codec()
        self.producer = DurableProducer(
            bootstrap_servers,
            **{"message.timeout.ms": int(timeout_s * 1000), "client.id": "storee-gateway"},  # type: ignore[arg-type]
        )
        self._sender = AsyncProducer(self.producer)

    def start(self) -> None:
        self._sender.start()

    async def publish(self, topic: str, key: str, event: Event) -> Message:
        """Produce ``event`` and wait until Kafka acknowledged it; raise :class:`PublishFailed` if not."""
        value = self.codec.encode(event)
        started = time.perf_counter()
        try:
            future = self._sender.send(topic, value, key=key)
        except (KafkaUnavailable, BufferError) as exc:
            raise PublishFailed(f"{topic}: local queue full: {exc}") from exc
        try:
            message = await asyncio.wait_for(future, self.timeout_s + _REPORT_MARGIN_S)
        except TimeoutError:
            raise PublishFailed(f"{topic}: no delivery report within {self.timeout_s:.1f}s") from None
        except DeliveryFailed as exc:
            raise PublishFailed(str(exc)) from None
        log.debug(
            "published topic=%s partition=%s offset=%s key=%s ms=%.1f",
            message.topic(),
            message.partition(),
            message.offset(),
            key,
            (time.perf_counter() - started) * 1000,
        )
        return message

    def reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether a broker answers a metadata request (blocking: call it from a thread)."""
        try:
            self.producer.client.list_topics(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - any failure means "not reachable", the caller reports it
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self._sender.close(timeout_s)
