"""Result events and dead letters out, with a check that Kafka acknowledged every one of them.

A batch's offsets are committed only after :meth:`ResultPublisher.confirm` returned: every record
produced since the last confirm was acknowledged (``acks=all``). Kafka being unavailable is waited
out there, never turned into an exit: a record that timed out or failed retriably is produced again
after a bounded backoff (each wait logged and counted), for as long as it takes; only a stopping
member stops waiting, and then hands the batch back uncommitted (:class:`BatchHandedBack`). A record
Kafka refuses for good raises :class:`ResultRefused` naming its task; a fatal client error raises
:class:`KafkaClientBroken`. Progress events are best effort: one lost or refused is dropped. Every
event is checked against the schema contract before it goes out, so the member never publishes an
event the job view would dead-letter.
"""

from __future__ import annotations

import functools
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message

from gpu_consumers.delivery import Verdict, verdict
from gpu_consumers.exceptions import BatchHandedBack, KafkaClientBroken, ResultRefused
from gpu_consumers.failures import RetryPolicy
from gpu_consumers.metrics import ConsumerMetrics
from ops.runtime.kafka import DurableProducer, Headers, KafkaUnavailable
from schemas.codec import Codec
from schemas.contract import check
from schemas.dlq import DeadLetterRecord
from schemas.events import Event, TaskProgress

log = logging.getLogger(__name__)

# Backoff between re-sends while Kafka is unavailable: 0.5-1 s, doubling up to 15-30 s (half of it jitter).
DELIVERY_BACKOFF = RetryPolicy(max_retries=0, base_s=1.0, max_s=30.0)


@dataclass(frozen=True, slots=True)
class _Record:
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers | None
    task_id: str | None  # the task whose event this is; None for a dead letter
    essential: bool  # False for progress: never waited on


def _never_stopping(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class ResultPublisher:
    """Produces to ``task.events`` and the DLQ, tracks every delivery report, re-sends what failed."""

    def __init__(
        self,
        producer: DurableProducer,
        codec: Codec,
        *,
        task_events: str,
        dlq: str,
        metrics: ConsumerMetrics | None = None,
        wait: Callable[[float], bool] = _never_stopping,
        backoff: RetryPolicy = DELIVERY_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        self._producer = producer
        self._codec = codec
        self._task_events = task_events
        self._dlq = dlq
        self._metrics = metrics
        # wait(seconds) sleeps and returns True if the member began stopping meanwhile.
        self._wait = wait
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._serials = itertools.count()
        self._pending: dict[int, _Record] = {}
        self._resend: list[_Record] = []
        self._refused: list[tuple[_Record, str]] = []
        self._broken: str | None = None

    def event(self, event: Event) -> None:
        """Produce a task event keyed by its story (every task event carries ``story_id``).

        The event is checked against the contract first (:mod:`schemas.contract`): one the job view
        would dead-letter raises :class:`~schemas.exceptions.ContractError` here instead.
        """
        check(event)
        key = getattr(event, "story_id")  # noqa: B009 - Event itself has no story_id; task events do
        self._send(
            _Record(
                self._task_events,
                self._codec.encode(event),
                key.encode("utf-8"),
                None,
                getattr(event, "task_id", None),
                essential=not isinstance(event, TaskProgress),
            )
        )

    def dead_letter(self, record: DeadLetterRecord) -> None:
        self._send(_Record(self._dlq, record.value or b"", record.key, record.headers, None, essential=True))

    def confirm(self, timeout: float) -> None:
        """Return once every record produced so far is acknowledged, waiting out Kafka if need be.

        ``timeout`` is how long one wait for acknowledgements lasts before it counts as Kafka being
        unavailable; the waiting itself has no limit but the member stopping.
        """
        waits, started = 0, time.monotonic()
        while True:
            self._producer.flush(timeout)
            with self._lock:
                broken, refused, resend = self._broken, self._refused, self._resend
                outstanding = len(self._pending)
                self._refused, self._resend = [], []
            if broken is not None:
                raise KafkaClientBroken(f"the result producer hit a fatal error: {broken}")
            if refused:
                with self._lock:
                    self._resend[:0] = resend  # still owed; sent by the next confirm
                raise ResultRefused(
                    f"Kafka refused {len(refused)} result records: {refused[0][1]}",
                    task_ids=[record.task_id for record, _ in refused if record.task_id is not None],
                )
            if not resend and not outstanding:
                if waits:
                    log.info(
                        "results acknowledged after waiting out Kafka waits=%d waited_s=%.1f",
                        waits,
                        time.monotonic() - started,
                    )
                return
            waits += 1
            delay = self._backoff.delay(min(waits, 16), self._rng)
            log.warning(
                "results not acknowledged, waiting out Kafka outstanding=%d to_resend=%d wait=%d in_s=%.1f",
                outstanding,
                len(resend),
                waits,
                delay,
            )
            if self._metrics is not None:
                self._metrics.delivery_waited(delay)
            if self._wait(delay):
                owed = outstanding + len(resend)
                raise BatchHandedBack(f"stopping while Kafka was unavailable ({owed} records unacknowledged)")
            for record in resend:
                self._send(record)

    def _send(self, record: _Record) -> None:
        with self._lock:
            serial = next(self._serials)
            self._pending[serial] = record
        try:
            self._producer.produce(
                record.topic,
                record.value,
                key=record.key,
                headers=record.headers,
                on_delivery=functools.partial(self._delivered, serial),
            )
        except KafkaUnavailable:
            # The local queue stayed full: Kafka has been away for a while. Owed, sent again later.
            self._settle(serial, KafkaError(KafkaError._QUEUE_FULL, "local produce queue full"))
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            self._settle(serial, error or KafkaError(KafkaError._FAIL, str(exc)))

    def _delivered(self, serial: int, error: KafkaError | None, message: Message) -> None:
        if error is None:
            log.debug(
                "delivered topic=%s partition=%s offset=%s",
                message.topic(),
                message.partition(),
                message.offset(),
            )
        self._settle(serial, error)

    def _settle(self, serial: int, error: KafkaError | None) -> None:
        with self._lock:
            record = self._pending.pop(serial, None)
            if record is None or error is None:
                return
            kind = verdict(error)
            if kind is Verdict.FATAL:
                self._broken = self._broken or error.str()
            elif not record.essential:
                pass  # a lost progress event is harmless
            elif kind is Verdict.REFUSED:
                self._refused.append((record, f"{record.topic}: {error.str()}"))
            else:
                self._resend.append(record)
        if kind is not Verdict.RETRY:
            log.error(
                "result record refused topic=%s task_id=%s error=%s",
                record.topic,
                record.task_id,
                error.str(),
            )
        else:
            log.debug("result record not delivered topic=%s error=%s", record.topic, error.str())
