"""The one way in to Kafka: client configuration, a durable producer and a manual-commit consumer.

Nobody builds raw confluent-kafka config dicts in a handler; they call these. The producer is durable
by construction (``acks=all``, idempotence) and reports each delivery; the consumer never auto-commits,
so callers commit only after their side effects are done (RELIABILITY.md, promise 1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from ops.runtime.exceptions import StoreeError

log = logging.getLogger(__name__)
T = TypeVar("T")

Headers = list[tuple[str, bytes | None]]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class KafkaUnavailable(StoreeError):
    """Kafka did not answer or did not acknowledge in time."""


class DeliveryFailed(StoreeError):
    """Kafka refused a record (the error is in the message)."""


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        # The Java client's (and aiokafka's, so Faust's) partitioner: every producer of a story's events,
        # ours or another team's, puts them on the same partition number of equally sized topics, which
        # keeps a story's tasks and its cancellation on one stream worker.
        "partitioner": "murmur2_random",
        "message.timeout.ms": 30_000,
        "socket.keepalive.enable": True,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap_servers: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        "session.timeout.ms": 45_000,
    }
    config.update(overrides)
    return config


def admin_client(bootstrap_servers: str, **overrides: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, **overrides})


def make_consumer(bootstrap_servers: str, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(bootstrap_servers, group_id, **overrides))


def assign_only_consumer(bootstrap_servers: str, client_id: str, **overrides: Any) -> Consumer:
    """A consumer for tools that read records at chosen offsets: it only ``assign()``s partitions, so it
    never joins a group and never commits (librdkafka still wants a group id; this one is never used)."""
    return make_consumer(
        bootstrap_servers,
        f"{client_id}-never-joined",
        **{"client.id": client_id, "fetch.wait.max.ms": 10, **overrides},
    )


def log_offsets(
    admin: AdminClient,
    tps: Sequence[tuple[str, int]],
    spec: OffsetSpec,
    what: str,
    timeout_s: float,
    error: type[StoreeError] = KafkaUnavailable,
) -> dict[tuple[str, int], int]:
    """Per (topic, partition) the offset ``spec`` names (log start, end as read_committed consumers see
    it, or the first at a time), for tools that compare them with a group's commits."""
    if not tps:
        return {}
    futures = admin.list_offsets(
        {TopicPartition(t, p): spec for t, p in tps},
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=timeout_s,
    )
    return {
        (tp.topic, tp.partition): info.offset
        for tp, info in wait_all(futures, what, timeout_s, error).items()
    }


def wait_all(
    futures: Mapping[Any, Future[T]], what: str, timeout_s: float, error: type[StoreeError] = KafkaUnavailable
) -> dict[Any, T]:
    """The results of an admin client's futures; ``error`` naming ``what`` if Kafka refuses or is silent."""
    try:
        return {key: future.result(timeout=timeout_s + 1) for key, future in futures.items()}
    except KafkaException as exc:
        reason = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc
        raise error(f"{what}: {reason}") from exc
    except TimeoutError as exc:
        raise error(f"{what}: no answer from Kafka within {timeout_s:.1f}s") from exc


class DurableProducer:
    """A confluent-kafka producer with ``acks=all`` and idempotence, created lazily.

    ``produce`` serves the event loop (``poll(0)`` after each record, bounded retries on a full local
    queue); ``produce_sync`` blocks until Kafka acknowledged one record, for callers that must not
    answer before the event is durable.
    """

    def __init__(self, bootstrap_servers: str, *, buffer_retries: int = 3, **overrides: Any) -> None:
        self._config = producer_config(bootstrap_servers, **overrides)
        self._buffer_retries = buffer_retries
        self._producer: Producer | None = None

    @property
    def client(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._config)
        return self._producer

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Headers | Mapping[str, bytes | None] | None = None,
        on_delivery: DeliveryCallback | None = None,
        partition: int | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers}
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        if partition is not None:
            kwargs["partition"] = partition
        for attempt in range(self._buffer_retries + 1):
            try:
                self.client.produce(topic, **kwargs)
                break
            except BufferError:
                if attempt == self._buffer_retries:
                    raise KafkaUnavailable(f"local produce queue full for topic {topic}") from None
                self.client.poll(0.5)
        self.client.poll(0)

    def produce_sync(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Headers | Mapping[str, bytes | None] | None = None,
        timeout: float = 10.0,
    ) -> Message:
        """Produce one record and wait for its delivery report; raise if it did not succeed."""
        result: list[tuple[KafkaError | None, Message]] = []
        self.produce(topic, value, key=key, headers=headers, on_delivery=lambda e, m: result.append((e, m)))
        deadline = time.monotonic() + timeout
        while not result:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaUnavailable(f"no delivery report from {topic} within {timeout:.1f}s")
            self.client.poll(min(remaining, 0.1))
        error, message = result[0]
        if error is not None:
            if error.code() in (
                KafkaError._MSG_TIMED_OUT,
                KafkaError._TRANSPORT,
                KafkaError._ALL_BROKERS_DOWN,
            ):
                raise KafkaUnavailable(f"{topic}: {error.str()}")
            raise DeliveryFailed(f"{topic}: {error.str()}")
        log.debug(
            "delivered topic=%s partition=%s offset=%s",
            message.topic(),
            message.partition(),
            message.offset(),
        )
        return message

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; return how many are still pending."""
        if self._producer is None:
            return 0
        return self._producer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        remaining = self.flush(timeout)
        if remaining:
            log.warning("producer closed with %d records undelivered", remaining)
        self._producer = None


def raise_for_error(message: Message) -> Message:
    """Return a consumed message, or raise for a fatal error it carries (partition EOF is not one)."""
    error = message.error()
    if error is not None and error.code() != KafkaError._PARTITION_EOF:
        raise KafkaException(error)
    return message
