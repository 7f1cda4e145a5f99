"""Property tests: random and mutated bytes only ever raise CodecError; both codec paths agree."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.events import EVENTS_BY_NAME, Event
from schemas.exceptions import CodecError
from schemas.registry import MARKER, default_registry
from tests.schemas.factories import all_events
from tests.schemas.strategies import events

CODEC = Codec()
REFERENCE = Codec(compiled=False)
HEADERS = [entry.header for entry in default_registry().current_entries()]
VALID = [CODEC.encode(event) for event in all_events()]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_raises_codec_error(data: bytes) -> None:
    for codec in (CODEC, REFERENCE):
        try:
            event = codec.decode(data)
        except CodecError:
            continue
        assert isinstance(event, Event)
        # Whatever decodes must survive a round trip: no half-built objects.
        assert codec.decode(codec.encode(event)) == event


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    decodes_or_raises_codec_error(data)


@FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=400))
def test_known_header_with_a_random_body(header: bytes, body: bytes) -> None:
    decodes_or_raises_codec_error(header + body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "varint"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
        else:  # a long varint, as a mutated length or count prefix would be
            data[at:at] = bytes([0xFF] * draw(st.integers(1, 12))) + bytes([draw(st.integers(0, 127))])
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_events(data: bytes) -> None:
    decodes_or_raises_codec_error(data)


@FUZZ
@given(st.sampled_from(VALID), st.binary(min_size=2, max_size=2))
def test_any_other_marker_is_refused(data: bytes, marker: bytes) -> None:
    if marker != MARKER:
        try:
            CODEC.decode(marker + data[2:])
        except CodecError as exc:
            assert "wrong marker" in str(exc)
        else:
            raise AssertionError("decoded a message with the wrong marker")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_generated_and_fastavro_paths_agree(event: Event) -> None:
    data = CODEC.encode(event)
    assert data == REFERENCE.encode(event)
    assert CODEC.decode(data) == event
    assert REFERENCE.decode(data) == event
    assert type(event) is EVENTS_BY_NAME[event.schema_name]
