"""Building dead letters for records an agent could not decode or process."""

from __future__ import annotations

import logging
from typing import Any

from schemas.dlq import DeadLetterRecord, dead_letter

log = logging.getLogger(__name__)

SERVICE = "streams"


def letter_for(message: Any, error: BaseException, agent: str) -> DeadLetterRecord:
    """The DLQ record for a consumed Faust or confluent-kafka message that failed with ``error``."""
    if hasattr(message, "tp"):  # a Faust message
        topic, partition, offset = message.topic, message.partition, message.offset
        key, value, headers = message.key, message.value, message.headers
    else:  # a confluent-kafka message
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        key, value, headers = message.key(), message.value(), message.headers()
    log.warning(
        "dead letter agent=%s topic=%s partition=%s offset=%s error=%s: %s",
        agent, topic, partition, offset, type(error).__name__, error,
    )  # fmt: skip
    return dead_letter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key if isinstance(key, bytes | None) else str(key).encode(),
        value=value if isinstance(value, bytes | None) else bytes(value),
        headers=_headers(headers),
        error=error,
        service=f"{SERVICE}.{agent}",
    )


def _headers(headers: Any) -> list[tuple[str, bytes | None]]:
    if not headers:
        return []
    pairs = headers.items() if hasattr(headers, "items") else headers
    return [(k if isinstance(k, str) else k.decode(), v) for k, v in pairs]
