"""The Python classes match the .avsc files one-to-one, and every event round-trips."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

import pytest

from schemas.codec import Codec
from schemas.events import EVENT_TYPES, EVENTS_BY_NAME, PYTHON_TYPES, Event
from schemas.records import SHARED_TYPES, Record
from schemas.registry import NAMESPACE, default_registry
from tests.schemas.factories import all_events, task_requested

ENVELOPE = [("event_id", "string"), ("event_time", "long"), ("sequence", "long")]
# The only Python defaults the schemas cannot state: a fresh id and the current time.
FACTORY_DEFAULTS = {"event_id", "event_time"}
_SCALARS = {
    "string": "str",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "boolean": "bool",
    "bytes": "bytes",
}


def avro_shape(node: Any, named: dict[str, Any]) -> Any:
    if isinstance(node, list):
        others = [branch for branch in node if branch != "null"]
        assert len(node) == 2 and len(others) == 1, f"only [null, T] unions are used, got {node}"
        return ("optional", avro_shape(others[0], named))
    if isinstance(node, str):
        return _SCALARS[node] if node in _SCALARS else avro_shape(named[node], named)
    if node["type"] in ("record", "enum"):
        return (node["type"], node["name"])
    if node["type"] == "array":
        return ("tuple", avro_shape(node["items"], named))
    return avro_shape(node["type"], named)


def python_shape(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return ("optional", python_shape(inner))
    if origin is tuple:
        item, ellipsis = typing.get_args(hint)
        assert ellipsis is Ellipsis
        return ("tuple", python_shape(item))
    if isinstance(hint, type) and issubclass(hint, Record):
        return ("record", hint.schema_name)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return ("enum", f"{NAMESPACE}.{hint.__name__}")
    return hint.__name__


def avro_default(value: Any) -> Any:
    return () if value == [] else value


def check_record_class(cls: type, schema: dict[str, Any], named: dict[str, Any]) -> None:
    hints = typing.get_type_hints(cls)
    py_fields = {f.name: f for f in dataclasses.fields(cls)}
    avro_fields = {f["name"]: f for f in schema["fields"]}
    assert set(py_fields) == set(avro_fields), f"{cls.__name__} fields differ from {schema['name']}"
    for name, avro in avro_fields.items():
        field = py_fields[name]
        assert python_shape(hints[name]) == avro_shape(avro["type"], named), f"{cls.__name__}.{name} type"
        if name in FACTORY_DEFAULTS and issubclass(cls, Event):
            assert field.default_factory is not dataclasses.MISSING and "default" not in avro
        elif "default" in avro:
            assert field.default == avro_default(avro["default"]), f"{cls.__name__}.{name} default"
        else:
            assert field.default is dataclasses.MISSING, (
                f"{cls.__name__}.{name} has a default the schema lacks"
            )
            assert field.default_factory is dataclasses.MISSING


def test_every_schema_has_one_event_class_and_back() -> None:
    assert set(EVENTS_BY_NAME) == set(default_registry().names)
    assert len(EVENT_TYPES) == len(EVENTS_BY_NAME) == 10


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_event_class_matches_its_schema(cls: type[Event]) -> None:
    entry = default_registry().current(cls.schema_name)
    check_record_class(cls, entry.parsed, entry.parsed["__named_schemas"])


def test_shared_classes_match_their_named_types() -> None:
    named: dict[str, Any] = {}
    for entry in default_registry().current_entries():
        named.update(entry.parsed["__named_schemas"])
    for cls in SHARED_TYPES:
        schema = named[f"{NAMESPACE}.{cls.__name__}"]
        if issubclass(cls, enum.Enum):
            assert [member.value for member in cls] == schema["symbols"]
        else:
            check_record_class(cls, schema, named)
    assert set(PYTHON_TYPES) == set(named), "every named Avro type has exactly one Python class"


@pytest.mark.parametrize("name", sorted(EVENTS_BY_NAME))
def test_every_event_starts_with_the_envelope(name: str) -> None:
    fields = default_registry().current(name).schema["fields"]
    assert [(f["name"], f["type"]) for f in fields[:3]] == ENVELOPE


def _walk(node: Any) -> list[dict[str, Any]]:
    """Every named type and field in a schema."""
    found = []
    if isinstance(node, list):
        for branch in node:
            found += _walk(branch)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            found.append(node)
        for field in node.get("fields", []):
            found.append(field)
            found += _walk(field["type"])
        found += _walk(node.get("items"))
        if isinstance(node.get("type"), (dict, list)):
            found += _walk(node["type"])
    return found


@pytest.mark.parametrize("name", sorted(EVENTS_BY_NAME))
def test_every_field_and_type_is_documented_in_the_namespace(name: str) -> None:
    schema = default_registry().current(name).schema
    for node in _walk(schema):
        assert node.get("doc", "").strip(), f"{name}: {node['name']} has no doc"
        if node.get("type") in ("record", "enum"):
            assert node.get("namespace") == NAMESPACE, f"{node['name']} is outside {NAMESPACE}"


@pytest.mark.parametrize("event", all_events(), ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: Event) -> None:
    codec, reference = Codec(), Codec(compiled=False)
    data = codec.encode(event)
    assert data == reference.encode(event)
    assert codec.decode(data) == event
    assert reference.decode(data) == event
    assert type(event).from_record(event.to_record()) == event


def test_events_are_frozen() -> None:
    event = task_requested()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.prompt = "changed"  # type: ignore[misc]
    assert dataclasses.replace(event, attempt=1).attempt == 1


def test_event_defaults_fill_a_fresh_id_and_the_time() -> None:
    from schemas.events import StoryCancelled

    one = StoryCancelled(story_id="s", account_id="a")
    two = StoryCancelled(story_id="s", account_id="a")
    assert len(one.event_id) == 32 and one.event_id != two.event_id
    assert one.event_time > 1_700_000_000_000 and one.sequence == 0 and one.reason is None


def test_to_record_gives_what_fastavro_writes() -> None:
    record = task_requested().to_record()
    assert record["tier"] == "premium" and type(record["params"]) is dict
    assert list(record) == [f.name for f in dataclasses.fields(type(task_requested()))]
