"""What a failed delivery of a result record means: wait, give up on that record, or stop (pure).

Kafka being unavailable (brokers down, no leader, not enough in-sync replicas, a record timed out in
the local queue) is waited out: the record is produced again after a bounded backoff and nothing is
committed meanwhile. A refusal that names the record itself (too large, invalid) cannot be waited
out, so the batch fails the task whose event it was. A fatal client error (the idempotent producer
fenced or out of sequence) means only a new process can produce again: the member stops.
"""

from __future__ import annotations

import enum

from confluent_kafka import KafkaError


class Verdict(enum.Enum):
    RETRY = "retry"
    REFUSED = "refused"
    FATAL = "fatal"


# Errors about the record itself: producing it again gets the same answer.
_RECORD_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._BAD_MSG,
        KafkaError._INVALID_ARG,
        KafkaError._KEY_SERIALIZATION,
        KafkaError._VALUE_SERIALIZATION,
    }
)


def is_fatal(error: KafkaError) -> bool:
    """Whether the client that reported ``error`` is broken for good.

    librdkafka reports a fatal error as an error event whose code is ``_FATAL`` but whose ``fatal()``
    flag may be unset (seen with the consumer group protocol's UNRELEASED_INSTANCE_ID), so both count.
    """
    return error.fatal() or error.code() == KafkaError._FATAL


def verdict(error: KafkaError) -> Verdict:
    """How to treat a delivery report (or produce call) that failed with ``error``.

    Everything that is neither fatal nor about the record is waited out, including errors an
    operator fixes (a missing topic, a revoked ACL): failing stories for them would be worse than
    waiting.
    """
    if is_fatal(error):
        return Verdict.FATAL
    if error.code() in _RECORD_ERRORS:
        return Verdict.REFUSED
    return Verdict.RETRY
