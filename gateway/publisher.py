"""Publishing events from the event loop without blocking it.

One :class:`~ops.runtime.kafka.DurableProducer` per process (``acks=all``, idempotence), one background thread
that keeps calling ``poll``, and each delivery report resolved into an asyncio future through
``loop.call_soon_threadsafe``. :meth:`EventPublisher.publish` returns only once Kafka acknowledged the
record, which is what lets the gateway answer 202.

librdkafka's ``message.timeout.ms`` is set to the publish timeout, so a record that cannot be delivered
is reported failed *before* the caller stops waiting: the gateway then says 503 about a record that
will not appear later. The extra wait margin only covers a report that arrives late.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, Message

from ops.runtime.kafka import DurableProducer, KafkaUnavailable
from schemas.codec import Codec
from schemas.events import Event

log = logging.getLogger(__name__)

_REPORT_MARGIN_S = 2.0
_POLL_S = 0.05


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.producer.client  # noqa: B018 - create the client now, not on the first request
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        client = self.producer.client
        while not self._stop.is_set():
            client.poll(_POLL_S)

    async def publish(self, topic: str, key: str, event: Event) -> Message:
        """Produce ``event`` and wait until Kafka acknowledged it; raise :class:`PublishFailed` if not."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            # Runs on the poll thread (or inside produce's poll(0)); futures belong to the loop.
            loop.call_soon_threadsafe(_settle, future, error, message)

        value = self.codec.encode(event)
        started = time.perf_counter()
        try:
            self.producer.produce(topic, value, key=key, on_delivery=on_delivery)
        except (KafkaUnavailable, BufferError) as exc:
            raise PublishFailed(f"{topic}: local queue full: {exc}") from exc
        try:
            message = await asyncio.wait_for(future, self.timeout_s + _REPORT_MARGIN_S)
        except TimeoutError:
            raise PublishFailed(f"{topic}: no delivery report within {self.timeout_s:.1f}s") from None
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
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.producer.close(timeout_s)


def _settle(future: asyncio.Future[Message], error: KafkaError | None, message: Message) -> None:
    if future.done():  # the caller gave up waiting
        return
    if error is not None:
        future.set_exception(PublishFailed(f"{message.topic()}: {error.str()}"))
    else:
        future.set_result(message)


def describe(message: Message) -> dict[str, Any]:
    return {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
