"""Dead letters keep the original record intact and carry their reason in headers."""

from __future__ import annotations

import pytest

from schemas.dlq import (
    ERROR_MESSAGE,
    MAX_ERROR_MESSAGE_BYTES,
    ORIGIN_TOPIC,
    DeadLetter,
    DeadLetterError,
    dead_letter,
    error_class_name,
    original_headers,
)
from schemas.exceptions import CodecError


def _letter(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = dict(
        topic="storee.tasks.requested",
        partition=3,
        offset=1234,
        key=b"story-1",
        value=b"\xc3\x01garbage",
        headers=[("traceparent", b"00-abc"), ("empty", None)],
        error=CodecError("wrong marker"),
        service="batcher",
        failed_at=1_767_225_600_000,
    )
    values.update(overrides)
    return values


def test_dead_letter_keeps_the_record_and_adds_its_reason() -> None:
    record = dead_letter(**_letter())  # type: ignore[arg-type]
    assert record.key == b"story-1" and record.value == b"\xc3\x01garbage"
    assert record.headers[:2] == [("traceparent", b"00-abc"), ("empty", None)]
    assert DeadLetter.from_headers(record.headers) == DeadLetter(
        origin_topic="storee.tasks.requested",
        origin_partition=3,
        origin_offset=1234,
        error_class="schemas.exceptions.CodecError",
        error_message="wrong marker",
        service="batcher",
        failed_at=1_767_225_600_000,
    )
    assert original_headers(record.headers) == [("traceparent", b"00-abc"), ("empty", None)]


def test_failing_again_replaces_the_old_reason() -> None:
    first = dead_letter(**_letter())  # type: ignore[arg-type]
    second = dead_letter(**_letter(topic="storee.dlq", headers=first.headers, error=KeyError("x")))  # type: ignore[arg-type]
    assert sum(name == ORIGIN_TOPIC for name, _ in second.headers) == 1
    letter = DeadLetter.from_headers(second.headers)
    assert (letter.origin_topic, letter.error_class) == ("storee.dlq", "KeyError")


def test_long_messages_are_truncated_on_a_character_boundary() -> None:
    record = dead_letter(**_letter(error=ValueError("é" * 5000)))  # type: ignore[arg-type]
    (message,) = [value for name, value in record.headers if name == ERROR_MESSAGE]
    assert message is not None and len(message) <= MAX_ERROR_MESSAGE_BYTES
    assert message.decode("utf-8").endswith("... (truncated)")


def test_from_headers_accepts_a_mapping_and_names_what_is_missing() -> None:
    headers = dict(dead_letter(**_letter()).headers)  # type: ignore[arg-type]
    assert DeadLetter.from_headers(headers).origin_offset == 1234
    del headers[ORIGIN_TOPIC]
    with pytest.raises(DeadLetterError, match=ORIGIN_TOPIC):
        DeadLetter.from_headers(headers)
    with pytest.raises(DeadLetterError, match="must be an integer"):
        DeadLetter.from_headers({**dict(dead_letter(**_letter()).headers), "storee.dlq.origin.offset": b"x"})  # type: ignore[arg-type]


def test_error_class_names() -> None:
    assert error_class_name(ValueError()) == "ValueError"
    assert error_class_name(CodecError()) == "schemas.exceptions.CodecError"


def test_a_replay_marker_is_told_apart_from_a_dead_letter() -> None:
    from schemas.dlq import REPLAY_OF, REPLAYED_FROM, is_replay_marker

    letter = dead_letter(**_letter())  # type: ignore[arg-type]
    assert not is_replay_marker(letter.headers)
    assert is_replay_marker({REPLAY_OF: b"0:5"})
    assert not is_replay_marker([(REPLAYED_FROM, b"0:5")])  # a replayed record is not a marker
    # A replayed record that fails again keeps where it was replayed from in its new dead letter.
    again = dead_letter(**_letter(headers=[*letter.headers, (REPLAYED_FROM, b"0:5")]))  # type: ignore[arg-type]
    assert (REPLAYED_FROM, b"0:5") in again.headers
    with pytest.raises(DeadLetterError):
        DeadLetter.from_headers({REPLAY_OF: b"0:5"})
