"""Hypothesis strategies built from the Avro schemas themselves, so they cover every field."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from schemas.events import EVENTS_BY_NAME, Event
from schemas.registry import SchemaEntry, default_registry

_INT = st.integers(-(2**31), 2**31 - 1)
_LONG = st.integers(-(2**63), 2**63 - 1)
_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": _INT | st.integers(-200, 200),
    "long": _LONG | st.integers(-200, 200),
    # NaN never equals itself, which would fail round-trip equality for no fault of the codec.
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=64),
    "string": st.text(max_size=40) | st.text(max_size=300),
}


def for_schema(node: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values fastavro accepts for a (parsed) schema node, shaped as fastavro reads them."""
    if isinstance(node, list):
        return st.one_of([for_schema(branch, named) for branch in node])
    if isinstance(node, str):
        return _PRIMITIVES[node] if node in _PRIMITIVES else for_schema(named[node], named)
    kind = node["type"]
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: for_schema(f["type"], named) for f in node["fields"]})
    if kind == "enum":
        return st.sampled_from(node["symbols"])
    if kind == "array":
        return st.lists(for_schema(node["items"], named), max_size=4)
    return for_schema(kind, named)


def records(entry: SchemaEntry) -> st.SearchStrategy[dict[str, Any]]:
    return for_schema(entry.parsed, entry.parsed["__named_schemas"])


def events_of(name: str) -> st.SearchStrategy[Event]:
    return records(default_registry().current(name)).map(EVENTS_BY_NAME[name].from_record)


def events() -> st.SearchStrategy[Event]:
    return st.one_of([events_of(name) for name in sorted(EVENTS_BY_NAME)])
