"""Producing from an event loop: each record's delivery report as an asyncio future.

One :class:`~ops.runtime.kafka.DurableProducer` (``acks=all``, idempotence), one thread that serves its
delivery reports (``poll``), and each report resolved into the future of the record it belongs to
through ``loop.call_soon_threadsafe`` (futures belong to their loop; reports arrive on the thread).
The gateway awaits the future before it answers 202; the stream worker's outlet collects them and
flushes before a commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message

from ops.runtime.kafka import DeliveryFailed, DurableProducer

log = logging.getLogger(__name__)

_POLL_S = 0.05
_FATAL_PAUSE_S = 1.0

Headers = Sequence[tuple[str, bytes | None]]
OnRefused = Callable[[str], None]


class AsyncProducer:
    """A :class:`DurableProducer` whose :meth:`send` returns a future settled by Kafka's report.

    A refused record's future raises :class:`DeliveryFailed` naming the topic and Kafka's reason;
    ``on_refused`` (if given) hears the same reason on the report thread, before the future settles,
    so a caller that checks for refusals after ``flush`` never misses one. Start with :meth:`start`,
    stop with :meth:`close`.
    """

    def __init__(self, producer: DurableProducer, *, on_refused: OnRefused | None = None) -> None:
        self.producer = producer
        self._on_refused = on_refused
        self._closed = threading.Event()
        self._reports: threading.Thread | None = None

    def start(self) -> None:
        self.producer.client  # noqa: B018 - create the client now, not on the first record
        if self._reports is None:
            self._reports = threading.Thread(target=self._serve_reports, name="kafka-reports", daemon=True)
            self._reports.start()

    def send(
        self, topic: str, value: bytes, *, key: bytes | str | None, headers: Headers | None = None
    ) -> asyncio.Future[Message]:
        """Produce one record; raise :class:`~ops.runtime.kafka.KafkaUnavailable` if the local queue
        stays full (Kafka has been unreachable for a while)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            # Runs on the report thread (or inside produce's poll(0)).
            if error is not None and self._on_refused is not None:
                self._on_refused(f"{topic}: {error.str()}")
            loop.call_soon_threadsafe(_settle, future, error, message)

        self.producer.produce(
            topic, value, key=key, headers=list(headers) if headers else None, on_delivery=delivered
        )
        return future

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop serving reports and close the producer, waiting up to ``timeout_s`` for deliveries."""
        self._closed.set()
        if self._reports is not None:
            self._reports.join(5)
        self.producer.close(timeout_s)

    def _serve_reports(self) -> None:
        client = self.producer.client
        while not self._closed.is_set():
            try:
                client.poll(_POLL_S)
            except KafkaException as exc:  # a fatal producer error: the futures and flush report it
                log.error("producer error: %s", exc)
                self._closed.wait(_FATAL_PAUSE_S)


def _settle(future: asyncio.Future[Message], error: KafkaError | None, message: Message) -> None:
    if future.done():  # the caller gave up waiting
        return
    if error is not None:
        future.set_exception(DeliveryFailed(f"{message.topic()}: {error.str()}"))
    else:
        future.set_result(message)
