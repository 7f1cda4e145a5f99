"""What the agents' shells produce through and keep state in, behind two small protocols so the shells
can be driven by tests without a broker.

:class:`KafkaOutlet` is what the worker uses: a confluent-kafka producer (librdkafka batches, compresses
and sends in its own thread, so producing costs the event loop one C call per record). Faust's own
producer hands records to aiokafka one at a time through its buffer, which profiled as a third of the
worker's time. The tables' changelogs still go through Faust, which recovers from them.

Guarantee: the worker's Faust producer calls :meth:`KafkaOutlet.flush` before every offset commit
(see :mod:`streams.transport`), and ``flush`` raises if any record since the last one was refused, so an
input's offset is never committed before what it produced is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import MutableMapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from ops.runtime.kafka import DeliveryFailed, DurableProducer, KafkaUnavailable

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes | None]]


class Outlet(Protocol):
    """Produces records; the returned future resolves once Kafka acknowledged the record."""

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> asyncio.Future[Any]: ...


class StateTable(Protocol):
    """A Faust table's store (``data``) and its changelog, written with an explicit partition."""

    @property
    def data(self) -> MutableMapping[bytes, bytes]: ...

    def send_changelog(self, partition: int | None, key: Any, value: Any) -> Any: ...


class KafkaOutlet:
    """An :class:`Outlet` over a durable confluent-kafka producer, for code running on an event loop.

    Delivery reports are served by a thread of its own and settle each record's future on the loop
    that sent it. Start with :meth:`start`, stop with :meth:`close`.
    """

    def __init__(self, producer: DurableProducer, *, flush_timeout_s: float = 30.0) -> None:
        self.producer = producer
        self.flush_timeout_s = flush_timeout_s
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        if self._poller is None:
            self._poller = threading.Thread(target=self._serve_reports, name="outlet-reports", daemon=True)
            self._poller.start()

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                with self._lock:
                    self._failures.append(f"{topic}: {error.str()}")
            loop.call_soon_threadsafe(_settle, future, error, message)

        while True:
            try:
                self.producer.produce(
                    topic, value or b"", key=key, headers=list(headers) if headers else None,
                    on_delivery=delivered,
                )  # fmt: skip
                return future
            except KafkaUnavailable as exc:
                # The local queue is full: Kafka has been unreachable for a while. Wait in place (the
                # producer polls between tries) rather than drop the record or fail the one that came in.
                log.warning("waiting for Kafka to take records topic=%s: %s", topic, exc)

    async def flush(self, *, wait_out: bool = True) -> None:
        """Wait until every record sent so far is acknowledged; raise if any was refused since the last
        flush (the caller must then not commit the offsets of the inputs behind them).

        While Kafka is unreachable this waits, logging every ``flush_timeout_s``, instead of failing the
        commit that called it: an outage is waited out, not turned into a restart. ``wait_out=False``
        (on stop) gives up after one timeout and raises :class:`KafkaUnavailable`.
        """
        while True:
            remaining = await asyncio.to_thread(self.producer.flush, self.flush_timeout_s)
            with self._lock:
                failures, self._failures = self._failures, []
            if failures:
                raise DeliveryFailed(f"{len(failures)} record(s) refused by Kafka, first: {failures[0]}")
            if not remaining:
                return
            if not wait_out:
                raise KafkaUnavailable(
                    f"{remaining} record(s) not acknowledged within {self.flush_timeout_s:.0f}s"
                )
            log.warning(
                "waiting for Kafka: %d record(s) not acknowledged after %.0fs more",
                remaining, self.flush_timeout_s,
            )  # fmt: skip

    def close(self) -> None:
        self._closed.set()
        if self._poller is not None:
            self._poller.join(5)
        self.producer.close(self.flush_timeout_s)

    def _serve_reports(self) -> None:
        while not self._closed.is_set():
            try:
                self.producer.client.poll(0.05)
            except KafkaException as exc:  # a fatal producer error: flush reports it to the committer
                log.error("producer error: %s", exc)
                self._closed.wait(1.0)


def _settle(future: asyncio.Future[Any], error: KafkaError | None, message: Message) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(DeliveryFailed(f"{message.topic()}: {error.str()}"))
    else:
        future.set_result(message)
