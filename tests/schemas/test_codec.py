"""The codec: single-object framing, golden bytes, schema resolution and clear errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from schemas.codec import Codec
from schemas.events import TaskExpired, TaskProgress, TaskRequested
from schemas.exceptions import CodecError
from schemas.registry import HEADER_SIZE, SchemaRegistry, default_registry, load_current_schemas
from tests.schemas.factories import STORY, T0, all_events, batch_ready, task_requested


def zigzag(value: int) -> bytes:
    """Avro's long encoding, written out independently of the codec."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(text: str) -> bytes:
    return zigzag(len(text.encode())) + text.encode()


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


def test_golden_bytes_of_a_task_expired(codec: Codec) -> None:
    event = TaskExpired(
        event_id="e" * 32, event_time=T0, sequence=5, story_id=STORY, task_id=f"{STORY}:2", deadline=T0 + 1
    )
    fingerprint = default_registry().current(TaskExpired.schema_name).fingerprint
    body = (
        avro_string("e" * 32)
        + zigzag(T0)
        + zigzag(5)
        + avro_string(STORY)
        + avro_string(f"{STORY}:2")
        + zigzag(T0 + 1)
        + zigzag(0)  # attempt (added with story retries; default 0)
    )
    assert codec.encode(event) == b"\xc3\x01" + fingerprint + body


def test_both_paths_agree_on_every_event(codec: Codec) -> None:
    reference = Codec(compiled=False)
    assert set(codec.compiled_events) == {type(e) for e in all_events()}
    for event in all_events():
        assert codec.encode(event) == reference.encode(event)


def test_decode_record_gives_the_name_and_a_plain_record(codec: Codec) -> None:
    name, record = codec.decode_record(codec.encode(batch_ready(2)))
    assert name == "storee.v1.BatchReady"
    assert record["tier"] == "premium" and len(record["tasks"]) == 2
    assert codec.schema_of(codec.encode(task_requested())).name == "TaskRequested"


def test_accepts_bytearray_and_memoryview(codec: Codec) -> None:
    data = codec.encode(task_requested())
    assert codec.decode(bytearray(data)) == codec.decode(memoryview(data)) == task_requested()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated message: 0 bytes"),
        (b"\xc3\x01\x00", "truncated message: 3 bytes"),
        (b"\x00\x01" + bytes(20), "wrong marker 0001"),
        (b'{"json": "no"}', "wrong marker 7b22"),
        (b"\xc3\x01" + bytes(8) + b"\x00", "unknown schema fingerprint 0000000000000000"),
        (None, "tombstone"),
        ("text", "expected bytes"),
    ],
)
def test_undecodable_bytes_raise_one_clear_error(codec: Codec, data: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        codec.decode(data)
    with pytest.raises(CodecError, match=message):
        codec.decode_record(data)


def test_truncated_body_and_trailing_bytes_are_errors(codec: Codec) -> None:
    data = codec.encode(task_requested())
    for cut in (HEADER_SIZE, HEADER_SIZE + 1, len(data) // 2, len(data) - 1):
        with pytest.raises(CodecError, match="cannot decode storee.v1.TaskRequested body"):
            codec.decode(data[:cut])
    with pytest.raises(CodecError, match="1 trailing bytes after the storee.v1.TaskRequested body"):
        codec.decode(data + b"\x00")


def test_absurd_lengths_fail_fast_without_allocating(codec: Codec) -> None:
    header = default_registry().current(TaskRequested.schema_name).header
    huge = zigzag(2**62)
    with pytest.raises(CodecError):
        codec.decode(header + huge + b"x" * 10)  # a 2**62-byte event_id
    batch = default_registry().current("storee.v1.BatchReady").header
    body = codec.encode(batch_ready(1))[HEADER_SIZE:]
    # Keep the envelope and ids, then claim 2**62 tasks.
    prefix = avro_string("0" * 32) + zigzag(T0) + zigzag(1)
    assert body.startswith(prefix)
    with pytest.raises(CodecError):
        codec.decode(
            batch
            + prefix
            + avro_string("b")
            + avro_string("default")
            + b"\x00\x00"
            + avro_string("m")
            + body[-60:]
            + huge
            + bytes(16)
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tier": "gold"}, "cannot encode storee.v1.TaskRequested"),
        ({"prompt": None}, "cannot encode storee.v1.TaskRequested"),
        ({"scene_index": 2**40}, "cannot encode storee.v1.TaskRequested"),
        ({"params": "832x480"}, "cannot encode storee.v1.TaskRequested"),
    ],
)
def test_events_that_do_not_fit_raise_codec_error(
    codec: Codec, changes: dict[str, Any], message: str
) -> None:
    event = task_requested()
    for name, value in changes.items():
        object.__setattr__(event, name, value)  # bypass typing on purpose: a caller's bug
    with pytest.raises(CodecError, match=message):
        codec.encode(event)


def _schema(name: str) -> dict[str, Any]:
    (schema,) = [s for s in load_current_schemas() if s["name"] == name]
    return copy.deepcopy(schema)


def test_old_writer_decodes_into_the_current_event() -> None:
    # The older TaskRequested had neither attempt nor deadline; both have defaults now.
    old = _schema("TaskRequested")
    old["fields"] = [f for f in old["fields"] if f["name"] not in ("attempt", "deadline")]
    codec = Codec(SchemaRegistry(load_current_schemas(), history=[old]))
    current = task_requested(attempt=0, deadline=None)
    record = {k: v for k, v in current.to_record().items() if k not in ("attempt", "deadline")}
    old_codec = Codec(SchemaRegistry([old]))
    data = old_codec.encode_record("storee.v1.TaskRequested", record)
    assert data[2:HEADER_SIZE] != default_registry().current(TaskRequested.schema_name).fingerprint
    assert codec.decode(data) == current
    with pytest.raises(CodecError, match="unknown schema fingerprint"):
        Codec().decode(data)  # a reader that never heard of the old writer says so


def test_new_reader_fills_an_added_field_from_its_default() -> None:
    new = _schema("TaskRequested")
    new["fields"].append({"name": "priority", "type": "int", "default": 7, "doc": "test-only field"})
    writer = _schema("TaskRequested")
    reader_codec = Codec(
        SchemaRegistry(
            [new, *[s for s in load_current_schemas() if s["name"] != "TaskRequested"]], history=[writer]
        )
    )
    name, record = reader_codec.decode_record(Codec().encode(task_requested()))
    assert name == "storee.v1.TaskRequested" and record["priority"] == 7
    assert record["prompt"] == task_requested().prompt


def test_incompatible_writer_raises_codec_error() -> None:
    old = _schema("TaskRequested")
    for field in old["fields"]:
        if field["name"] == "task_count":
            field["type"] = "string"
    data = Codec(SchemaRegistry([old])).encode_record(
        "storee.v1.TaskRequested", {**task_requested().to_record(), "task_count": "three"}
    )
    with pytest.raises(CodecError, match="SchemaResolutionError"):
        Codec(SchemaRegistry(load_current_schemas(), history=[old])).decode(data)


def test_values_outside_their_avro_type_are_refused_even_where_fastavro_reads_them(codec: Codec) -> None:
    event = TaskExpired(event_id="e" * 32, event_time=T0, story_id=STORY, task_id="t", deadline=1)
    data = codec.encode(event)
    expired = Codec(compiled=False).decode(data[:-2] + zigzag(2**40) + zigzag(0))  # deadline, attempt
    assert isinstance(expired, TaskExpired) and expired.deadline == 2**40  # a long: fine
    progress = codec.encode(
        TaskProgress(
            event_id="e" * 32,
            event_time=T0,
            story_id=STORY,
            task_id="t",
            batch_id="b",
            consumer_id="c",
            step=1,
            total_steps=2,
        )
    )
    corrupt = progress[:-1] + zigzag(2**40)  # total_steps is an Avro int
    lenient = Codec(compiled=False).decode(corrupt)
    assert isinstance(lenient, TaskProgress) and lenient.total_steps == 2**40  # fastavro does not check
    with pytest.raises(CodecError, match="does not fit an Avro int"):
        codec.decode(corrupt)
