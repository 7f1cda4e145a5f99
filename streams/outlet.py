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

from ops.runtime.async_producer import AsyncProducer
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

    An :class:`~ops.runtime.async_producer.AsyncProducer` settles each record's future on the loop that
    sent it and tells this outlet of every refusal, which :meth:`flush` then raises. Start with
    :meth:`start`, stop with :meth:`close`.
    """

    def __init__(self, producer: DurableProducer, *, flush_timeout_s: float = 30.0) -> None:
        self.producer = producer
        self.flush_timeout_s = flush_timeout_s
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._sender = AsyncProducer(producer, on_refused=self._refused)

    def start(self) -> None:
        self._sender.start()

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> asyncio.Future[Any]:
        while True:
            try:
                return self._sender.send(topic, value or b"", key=key, headers=headers)
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
        self._sender.close(self.flush_timeout_s)

    def _refused(self, reason: str) -> None:
        with self._lock:
            self._failures.append(reason)
