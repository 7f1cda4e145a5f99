"""Dead letters: what a consumer could not decode or process, with where it came from and why.

The DLQ record keeps the original key, value and headers untouched, so an operator can replay it as
it was, and adds ``storee.dlq.*`` headers naming the origin topic, partition and offset, the error and
the failing service. Every consumer builds its DLQ records here; producing them is the caller's part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.exceptions import StoreeError
from schemas.ids import now_ms

HEADER_PREFIX = "storee.dlq."
ORIGIN_TOPIC = HEADER_PREFIX + "origin.topic"
ORIGIN_PARTITION = HEADER_PREFIX + "origin.partition"
ORIGIN_OFFSET = HEADER_PREFIX + "origin.offset"
ERROR_CLASS = HEADER_PREFIX + "error.class"
ERROR_MESSAGE = HEADER_PREFIX + "error.message"
SERVICE = HEADER_PREFIX + "service"
FAILED_AT = HEADER_PREFIX + "failed_at"

# Replay bookkeeping (``storee dlq replay``). These names sit outside ``storee.dlq.*`` on purpose: a
# replayed record that fails again keeps ``REPLAYED_FROM`` in its new dead letter (``original_headers``
# drops only ``storee.dlq.*``), and a replay marker, which the replay tool writes to the DLQ topic, has
# no ``storee.dlq.origin.*`` headers, so no reader counts it as a dead letter of any origin.
REPLAY_PREFIX = "storee.replay."
REPLAYED_FROM = REPLAY_PREFIX + "from"  # on the replayed record: the dead letter's id
REPLAY_OF = REPLAY_PREFIX + "of"  # on a replay marker: the id of the dead letter it replayed
REPLAY_TOPIC = REPLAY_PREFIX + "topic"
REPLAY_PARTITION = REPLAY_PREFIX + "partition"
REPLAY_OFFSET = REPLAY_PREFIX + "offset"
REPLAYED_AT = REPLAY_PREFIX + "at"

# Kafka headers are small by convention; a traceback-sized message would bloat every DLQ record.
MAX_ERROR_MESSAGE_BYTES = 2048

Header = tuple[str, bytes | None]
HeadersLike = Iterable[Header] | Mapping[str, bytes | None] | None


class DeadLetterError(StoreeError):
    """A record lacks the ``storee.dlq.*`` headers that describe a dead letter, or they are malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """Why a record went to the DLQ and where it came from."""

    origin_topic: str
    origin_partition: int
    origin_offset: int
    error_class: str
    error_message: str
    service: str
    failed_at: int

    def headers(self) -> list[tuple[str, bytes]]:
        """The ``storee.dlq.*`` headers describing this dead letter."""
        return [
            (ORIGIN_TOPIC, self.origin_topic.encode()),
            (ORIGIN_PARTITION, str(self.origin_partition).encode()),
            (ORIGIN_OFFSET, str(self.origin_offset).encode()),
            (ERROR_CLASS, self.error_class.encode()),
            (ERROR_MESSAGE, _truncate(self.error_message).encode()),
            (SERVICE, self.service.encode()),
            (FAILED_AT, str(self.failed_at).encode()),
        ]

    @classmethod
    def from_headers(cls, headers: HeadersLike) -> DeadLetter:
        """Read a dead letter back from a DLQ record's headers."""
        found = {name: value for name, value in _pairs(headers) if name.startswith(HEADER_PREFIX)}

        def text(name: str) -> str:
            value = found.get(name)
            if value is None:
                raise DeadLetterError(f"DLQ record has no {name} header")
            return value.decode("utf-8", errors="replace")

        def number(name: str) -> int:
            raw = text(name)
            try:
                return int(raw)
            except ValueError:
                raise DeadLetterError(f"DLQ header {name} must be an integer, got {raw!r}") from None

        return cls(
            origin_topic=text(ORIGIN_TOPIC),
            origin_partition=number(ORIGIN_PARTITION),
            origin_offset=number(ORIGIN_OFFSET),
            error_class=text(ERROR_CLASS),
            error_message=text(ERROR_MESSAGE),
            service=text(SERVICE),
            failed_at=number(FAILED_AT),
        )


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """What to produce to the DLQ topic: the original key and value, headers with the reason added."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: HeadersLike,
    error: BaseException,
    service: str,
    failed_at: int | None = None,
) -> DeadLetterRecord:
    """Build the DLQ record for a consumed record that failed with ``error`` in ``service``."""
    letter = DeadLetter(
        origin_topic=topic,
        origin_partition=partition,
        origin_offset=offset,
        error_class=error_class_name(error),
        error_message=_truncate(str(error)),
        service=service,
        failed_at=now_ms() if failed_at is None else failed_at,
    )
    return DeadLetterRecord(key, value, [*original_headers(headers), *letter.headers()])


def original_headers(headers: HeadersLike) -> list[tuple[str, bytes | None]]:
    """The headers without any ``storee.dlq.*`` ones: what the record carried before it failed.

    A record replayed from the DLQ that fails again gets a fresh reason, not two conflicting ones.
    """
    return [(name, value) for name, value in _pairs(headers) if not name.startswith(HEADER_PREFIX)]


def is_replay_marker(headers: HeadersLike) -> bool:
    """Whether a record on the DLQ topic is a replay marker rather than a dead letter."""
    return any(name == REPLAY_OF for name, _ in _pairs(headers))


def error_class_name(error: BaseException) -> str:
    """``module.QualifiedName`` of an error's class (just the name for builtins)."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _truncate(message: str) -> str:
    encoded = message.encode("utf-8")
    if len(encoded) <= MAX_ERROR_MESSAGE_BYTES:
        return message
    suffix = "... (truncated)"
    # Cutting bytes may split a character; decoding with "ignore" drops the partial one.
    head = encoded[: MAX_ERROR_MESSAGE_BYTES - len(suffix)].decode("utf-8", errors="ignore")
    return head + suffix


def _pairs(headers: HeadersLike) -> list[Header]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)
