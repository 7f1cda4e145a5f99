"""Fingerprints follow the Avro specification; the registry serves every schema by name and fingerprint."""

from __future__ import annotations

import json
import struct

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint

from schemas.exceptions import SchemaError
from schemas.registry import (
    MARKER,
    SchemaEntry,
    SchemaRegistry,
    default_registry,
    inline_named_types,
    list_schemas,
)

# The Avro specification's reference algorithm ("Schema Fingerprints"), written out independently.
EMPTY = 0xC15D213AA4D7A795
TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (EMPTY & -(_fp & 1))
    TABLE.append(_fp)


def rabin(data: bytes) -> int:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ byte) & 0xFF]
    return fp


# From apache/avro share/test/data/schema-tests.txt: canonical form and signed 64-bit fingerprint.
AVRO_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"int"', 8247732601305521295),
    ('"string"', -8142146995180207161),
    ('{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    (
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
    ('{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
]


@pytest.mark.parametrize(("canonical", "expected"), AVRO_VECTORS)
def test_crc64_avro_matches_the_specification_vectors(canonical: str, expected: int) -> None:
    assert rabin(canonical.encode()) == expected & (2**64 - 1)
    wire = struct.pack("<q", expected)
    assert fastavro_fingerprint(canonical, "CRC-64-AVRO") == wire.hex()


def test_int_fingerprint_in_wire_order() -> None:
    assert struct.pack("<Q", rabin(b'"int"')).hex() == "8f5c393f1ad57572"


def test_registry_fingerprints_are_the_rabin_of_the_canonical_form() -> None:
    for entry in default_registry().current_entries():
        assert entry.fingerprint == struct.pack("<Q", rabin(entry.canonical_form.encode()))
        assert entry.header == MARKER + entry.fingerprint
        assert '"doc"' not in entry.canonical_form


def test_list_schemas_serves_every_event_for_get_v1_schemas() -> None:
    described = list_schemas()
    assert [d["name"] for d in described] == sorted(d["name"] for d in described)
    assert {d["fullname"] for d in described} == set(default_registry().names)
    for item in described:
        assert set(item) == {"name", "fullname", "fingerprint", "header", "schema", "current"}
        assert item["header"] == "c301" + item["fingerprint"] and len(item["fingerprint"]) == 16
        # Self-contained: an outside producer can parse it alone and get the same fingerprint.
        again = SchemaEntry.from_json(json.loads(json.dumps(item["schema"])))
        assert again.fingerprint.hex() == item["fingerprint"]


def test_list_schemas_can_add_history() -> None:
    everything = list_schemas(include_history=True)
    assert len({d["fingerprint"] for d in everything}) == len(everything)
    assert all(d["current"] for d in everything[: len(default_registry().names)])


def test_named_types_are_defined_once_at_first_use() -> None:
    named = {
        "storee.v1.P": {
            "type": "record",
            "name": "P",
            "namespace": "storee.v1",
            "fields": [{"name": "x", "type": "int"}],
        },
    }
    schema = {
        "type": "record",
        "name": "E",
        "namespace": "storee.v1",
        "fields": [
            {"name": "a", "type": "storee.v1.P"},
            {"name": "b", "type": ["null", "storee.v1.P"]},
            {"name": "c", "type": {"type": "array", "items": "storee.v1.P"}},
        ],
    }
    inlined = inline_named_types(schema, named)
    assert inlined["fields"][0]["type"]["name"] == "P"
    assert inlined["fields"][1]["type"] == ["null", "storee.v1.P"]
    assert inlined["fields"][2]["type"]["items"] == "storee.v1.P"
    SchemaEntry.from_json(inlined)


def test_registry_rejects_bad_and_duplicate_schemas() -> None:
    with pytest.raises(SchemaError, match="invalid schema"):
        SchemaRegistry([{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}])
    schema = {"type": "record", "name": "X", "fields": []}
    with pytest.raises(SchemaError, match="defined twice"):
        SchemaRegistry([schema, schema])
    with pytest.raises(SchemaError, match="no current schema"):
        SchemaRegistry([schema]).current("storee.v1.Missing")
