"""Known Avro schemas, by name and by CRC-64-AVRO fingerprint.

The current schemas come from ``schemas/avro`` (one ``.avsc`` per event, named types in ``common.avsc``);
every released schema comes from ``schemas/history``. A message names its writer schema only by
fingerprint, so a reader can decode exactly the schemas listed here.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas.exceptions import SchemaError

NAMESPACE = "storee.v1"
MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8
COMMON_FILE = "common.avsc"

JsonSchema = dict[str, Any]


@dataclass(frozen=True, slots=True, eq=False)
class SchemaEntry:
    """One event schema: its self-contained JSON, canonical form, fingerprint and parsed form."""

    fullname: str
    schema: JsonSchema
    canonical_form: str
    fingerprint: bytes
    parsed: Any

    @classmethod
    def from_json(cls, schema: JsonSchema) -> SchemaEntry:
        try:
            parsed: Any = parse_schema(copy.deepcopy(schema))
            canonical = to_parsing_canonical_form(schema)
        except Exception as exc:  # fastavro raises several types for a bad schema
            raise SchemaError(f"invalid schema {schema.get('name')!r}: {exc}") from exc
        # fastavro returns the hex of the 8 fingerprint bytes in little-endian order: the wire order.
        fingerprint = bytes.fromhex(avro_fingerprint(canonical, "CRC-64-AVRO"))
        return cls(parsed["name"], schema, canonical, fingerprint, parsed)

    @property
    def name(self) -> str:
        return self.fullname.rsplit(".", 1)[-1]

    @property
    def header(self) -> bytes:
        """The 10 bytes that start every message written with this schema."""
        return MARKER + self.fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fullname": self.fullname,
            "fingerprint": self.fingerprint.hex(),
            "header": self.header.hex(),
            "schema": copy.deepcopy(self.schema),
        }


class SchemaRegistry:
    """The current schema of every event plus every older writer schema, by fingerprint."""

    def __init__(self, current: Iterable[JsonSchema], history: Iterable[JsonSchema] = ()) -> None:
        self._current: dict[str, SchemaEntry] = {}
        self._by_fingerprint: dict[bytes, SchemaEntry] = {}
        for schema in current:
            entry = SchemaEntry.from_json(schema)
            if entry.fullname in self._current:
                raise SchemaError(f"schema {entry.fullname} is defined twice")
            self._current[entry.fullname] = entry
            self._by_fingerprint[entry.fingerprint] = entry
        self._history: list[SchemaEntry] = []
        for schema in history:
            entry = SchemaEntry.from_json(schema)
            self._history.append(entry)
            # A snapshot equal to a current schema keeps the current entry (same canonical form).
            self._by_fingerprint.setdefault(entry.fingerprint, entry)

    @classmethod
    def load(cls) -> SchemaRegistry:
        """Build the registry from the ``.avsc`` files shipped in this package."""
        return cls(load_current_schemas(), load_history_schemas())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._current)

    def current(self, fullname: str) -> SchemaEntry:
        try:
            return self._current[fullname]
        except KeyError:
            raise SchemaError(f"no current schema named {fullname!r}") from None

    def find(self, fingerprint: bytes) -> SchemaEntry | None:
        return self._by_fingerprint.get(fingerprint)

    def current_entries(self) -> tuple[SchemaEntry, ...]:
        return tuple(self._current.values())

    def history_entries(self) -> tuple[SchemaEntry, ...]:
        return tuple(self._history)


@functools.cache
def default_registry() -> SchemaRegistry:
    """The package's registry, loaded once per process (schemas are immutable data)."""
    return SchemaRegistry.load()


def list_schemas(
    registry: SchemaRegistry | None = None, *, include_history: bool = False
) -> list[dict[str, Any]]:
    """Every schema as ``{name, fullname, fingerprint, header, schema}``: the body of ``GET /v1/schemas``.

    ``fingerprint`` and ``header`` are hex of the bytes as they appear on the wire; with
    ``include_history`` older writer schemas follow the current ones, each marked ``current: false``.
    """
    registry = registry or default_registry()
    described = [{**entry.describe(), "current": True} for entry in registry.current_entries()]
    if include_history:
        current = {entry.fingerprint for entry in registry.current_entries()}
        described += [
            {**entry.describe(), "current": False}
            for entry in registry.history_entries()
            if entry.fingerprint not in current
        ]
    return described


def snapshot_files(registry: SchemaRegistry) -> dict[str, str]:
    """File name and text of every current schema that ``schemas/history`` does not hold yet."""
    released = {entry.fingerprint for entry in registry.history_entries()}
    return {
        f"{entry.name}.{entry.fingerprint.hex()}.avsc": json.dumps(entry.schema, indent=2) + "\n"
        for entry in registry.current_entries()
        if entry.fingerprint not in released
    }


def inline_named_types(schema: JsonSchema, named: Mapping[str, JsonSchema]) -> JsonSchema:
    """Return ``schema`` with each reference to a shared named type replaced by its definition.

    A type is defined at its first use and referenced by full name after that, as Avro requires, so
    every event schema is self-contained: its canonical form and fingerprint depend on it alone.
    """
    defined: set[str] = set()

    def visit(node: Any) -> Any:
        if isinstance(node, str):
            fullname = node if "." in node else f"{NAMESPACE}.{node}"
            if fullname in named and fullname not in defined:
                return visit(copy.deepcopy(named[fullname]))
            return node
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = dict(node)
        if node.get("type") in ("record", "enum", "fixed") and "name" in node:
            defined.add(_fullname(node))
        if node.get("type") == "record":
            node["fields"] = [{**field, "type": visit(field["type"])} for field in node["fields"]]
        elif node.get("type") == "array":
            node["items"] = visit(node["items"])
        elif node.get("type") == "map":
            node["values"] = visit(node["values"])
        elif isinstance(node.get("type"), (dict, list)):
            node["type"] = visit(node["type"])
        return node

    result: JsonSchema = visit(schema)
    return result


def load_current_schemas() -> list[JsonSchema]:
    """The current event schemas, self-contained, in file-name order."""
    folder = resources.files("schemas.avro")
    named: dict[str, JsonSchema] = {}
    for schema in _read_json(folder.joinpath(COMMON_FILE), COMMON_FILE):
        named[_fullname(schema)] = schema
    events = []
    for item in sorted(folder.iterdir(), key=lambda path: path.name):
        if item.name.endswith(".avsc") and item.name != COMMON_FILE:
            schema = _read_json(item, item.name)
            if schema.get("name") != item.name.removesuffix(".avsc"):
                raise SchemaError(f"{item.name} must define the record {item.name.removesuffix('.avsc')}")
            events.append(inline_named_types(schema, named))
    return events


def load_history_schemas() -> list[JsonSchema]:
    """Every released schema, in file-name order."""
    folder = resources.files("schemas.history")
    return [
        _read_json(item, item.name)
        for item in sorted(folder.iterdir(), key=lambda path: path.name)
        if item.name.endswith(".avsc")
    ]


def _fullname(schema: JsonSchema) -> str:
    name = str(schema["name"])
    return name if "." in name else f"{schema.get('namespace', NAMESPACE)}.{name}"


def _read_json(path: Any, label: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read schema file {label}: {exc}") from exc
