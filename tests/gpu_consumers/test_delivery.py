from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from gpu_consumers.delivery import Verdict, verdict


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._QUEUE_FULL,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    ],
)
def test_unavailability_is_waited_out(code: int) -> None:
    assert verdict(KafkaError(code)) is Verdict.RETRY


@pytest.mark.parametrize(
    "code", [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError._BAD_MSG]
)
def test_refusals_of_the_record_itself_are_not_retried(code: int) -> None:
    assert verdict(KafkaError(code)) is Verdict.REFUSED


def test_a_fatal_error_stops_the_member() -> None:
    assert verdict(KafkaError(KafkaError._FENCED, fatal=True)) is Verdict.FATAL
    assert verdict(KafkaError(KafkaError._MSG_TIMED_OUT, fatal=True)) is Verdict.FATAL
    # How librdkafka reported UNRELEASED_INSTANCE_ID: code _FATAL, fatal() False.
    assert verdict(KafkaError(KafkaError._FATAL)) is Verdict.FATAL
