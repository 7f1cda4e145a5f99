"""Backward compatibility: the current schemas read everything any released schema wrote.

``schemas/history`` holds every released schema. A schema change that cannot read old data (a new
field without a default, a changed type, a removed enum symbol) fails here; a compatible change fails
``test_every_current_schema_is_released`` until ``python -m ops.schema_history snapshot`` records it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.schema_history import HISTORY_DIR, snapshot
from schemas.codec import Codec
from schemas.events import EVENTS_BY_NAME
from schemas.registry import (
    SchemaEntry,
    SchemaRegistry,
    default_registry,
    load_current_schemas,
    snapshot_files,
)
from tests.schemas.strategies import records

HISTORY = default_registry().history_entries()
CODEC = Codec()


def test_history_is_not_empty() -> None:
    assert len(HISTORY) >= len(EVENTS_BY_NAME)


def test_every_current_schema_is_released() -> None:
    missing = sorted(snapshot_files(default_registry()))
    assert not missing, f"run `python -m ops.schema_history snapshot` to add {missing} to schemas/history"


@pytest.mark.parametrize("entry", HISTORY, ids=lambda e: f"{e.name}.{e.fingerprint.hex()}")
def test_history_file_names_match_their_contents(entry: SchemaEntry) -> None:
    assert (HISTORY_DIR / f"{entry.name}.{entry.fingerprint.hex()}.avsc").is_file()


@pytest.mark.parametrize("entry", HISTORY, ids=lambda e: f"{e.name}.{e.fingerprint.hex()}")
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_current_schema_reads_data_written_with_each_released_schema(
    entry: SchemaEntry, data: st.DataObject
) -> None:
    assert entry.fullname in default_registry().names, (
        f"{entry.fullname} was removed but data may still use it"
    )
    reader = default_registry().current(entry.fullname)
    record = data.draw(records(entry))
    out = io.BytesIO()
    schemaless_writer(out, entry.parsed, record)
    # Reader = current, writer = snapshot, through fastavro's schema resolution...
    schemaless_reader(io.BytesIO(out.getvalue()), entry.parsed, reader.parsed)
    # ...and through the codec, as a consumer would meet it on a topic.
    event = CODEC.decode(entry.header + out.getvalue())
    assert type(event).schema_name == entry.fullname


def test_snapshot_lists_only_schemas_not_yet_released(tmp_path: Path) -> None:
    unreleased = SchemaRegistry(load_current_schemas())
    files = snapshot_files(unreleased)
    assert len(files) == len(EVENTS_BY_NAME)
    for name, text in files.items():
        entry = SchemaEntry.from_json(json.loads(text))
        assert name == f"{entry.name}.{entry.fingerprint.hex()}.avsc"
    assert snapshot(tmp_path) == []  # every current schema is already in the package's history
