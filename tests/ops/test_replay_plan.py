"""The replay plan, pure: every reset mode, partitions without commits, retention and the log end."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.replay.commands import EXIT_NOOP, EXIT_OK, EXIT_REFUSED, exit_status
from ops.replay.exceptions import ReplayError
from ops.replay.plan import PartitionState, compute
from ops.replay.spec import Mode, ResetSpec, parse_datetime, parse_duration, parse_topic, read_offsets_file

T = "s.task.events"


def state(committed: int | None, start: int = 10, end: int = 100, at_time: int | None = None, p: int = 0):  # type: ignore[no-untyped-def]
    return PartitionState(T, p, committed, start, end, at_time)


def one(spec: ResetSpec, st: PartitionState):  # type: ignore[no-untyped-def]
    plan = compute("g", [st], spec, {T: "materializer"})
    (row,) = plan.partitions
    return row


def test_to_earliest_reprocesses_from_the_log_start() -> None:
    row = one(ResetSpec(Mode.EARLIEST), state(60))
    assert (row.position, row.new, row.reprocess, row.skip, row.changes) == (60, 10, 50, 0, True)
    assert row.redone == (10, 59) and row.stage == "materializer"


def test_to_latest_skips_to_the_log_end() -> None:
    row = one(ResetSpec(Mode.LATEST), state(60))
    assert (row.new, row.reprocess, row.skip) == (100, 0, 40)
    assert row.redone is None


def test_to_offset_and_shift_by() -> None:
    assert one(ResetSpec(Mode.OFFSET, 30), state(60)).reprocess == 30
    row = one(ResetSpec(Mode.SHIFT, -5), state(60))
    assert (row.new, row.reprocess) == (55, 5)
    assert one(ResetSpec(Mode.SHIFT, 7), state(60)).skip == 7


def test_time_modes_use_the_offset_kafka_found_or_the_log_end() -> None:
    for mode in (Mode.DATETIME, Mode.DURATION):
        assert one(ResetSpec(mode, 1_000), state(60, at_time=42)).new == 42
        # No record that new: nothing to redo, the group moves to the end (Kafka answers -1).
        assert one(ResetSpec(mode, 1_000), state(60, at_time=None)).new == 100
        assert one(ResetSpec(mode, 1_000), state(60, at_time=-1)).new == 100


def test_a_partition_without_a_commit_counts_from_the_log_start_and_always_changes() -> None:
    row = one(ResetSpec(Mode.EARLIEST), state(None))
    assert (row.position, row.new, row.reprocess, row.changes) == (10, 10, 0, True)
    assert "no commit" in row.notes[0]
    shifted = one(ResetSpec(Mode.SHIFT, 5), state(None))
    assert (shifted.new, shifted.skip) == (15, 5)


def test_offsets_before_the_log_start_are_clamped_and_said() -> None:
    row = one(ResetSpec(Mode.OFFSET, 3), state(60))
    assert row.new == 10 and row.reprocess == 50
    assert "clamped: 3 is before the log start 10" in row.notes[0]
    assert "retention" in row.notes[0]
    back = one(ResetSpec(Mode.SHIFT, -100), state(60))
    assert back.new == 10


def test_a_commit_deleted_by_retention_reads_from_the_log_start() -> None:
    row = one(ResetSpec(Mode.EARLIEST), state(4))
    assert (row.position, row.new, row.reprocess, row.changes) == (10, 10, 0, True)
    assert "deleted by retention" in row.notes[0]


def test_offsets_past_the_log_end_are_clamped() -> None:
    row = one(ResetSpec(Mode.OFFSET, 500), state(60))
    assert row.new == 100 and "past the log end 100" in row.notes[0]
    assert one(ResetSpec(Mode.SHIFT, 1000), state(60)).new == 100


def test_from_file_plans_only_the_partitions_it_names() -> None:
    spec = ResetSpec(Mode.FILE, offsets={(T, 1): 20})
    plan = compute("g", [state(60, p=0), state(60, p=1)], spec)
    assert [(r.partition, r.new) for r in plan.partitions] == [(1, 20)]
    assert plan.new_offsets == {(T, 1): 20}


def test_a_plan_that_moves_nothing_is_a_no_op() -> None:
    plan = compute("g", [state(100, p=0), state(100, p=1)], ResetSpec(Mode.LATEST))
    assert not plan.changes and plan.new_offsets == {}
    assert exit_status([plan]) == EXIT_NOOP
    moving = compute("g", [state(60)], ResetSpec(Mode.EARLIEST))
    assert exit_status([moving]) == EXIT_OK


def test_refusals_win_over_everything() -> None:
    from dataclasses import replace

    plan = replace(compute("g", [state(60)], ResetSpec(Mode.EARLIEST)), refusals=("busy",))
    assert exit_status([plan]) == EXIT_REFUSED


def test_times_and_the_json_document() -> None:
    plan = compute("g", [state(60, p=0), state(60, p=1)], ResetSpec(Mode.EARLIEST))
    plan = plan.with_times({(T, 0): (1_000, 5_000), (T, 1): (2_000, 9_000)})
    assert plan.time_range == (1_000, 9_000)
    doc = plan.as_dict()
    assert doc["reprocess"] == 100 and doc["first_record_at"] == "1970-01-01T00:00:01.000Z"
    assert doc["partitions"][0]["new"] == 10 and doc["partitions"][0]["committed"] == 60


def test_parsing() -> None:
    assert parse_duration("PT10M").total_seconds() == 600
    assert parse_duration("10m").total_seconds() == 600
    assert parse_duration("P1DT2H").total_seconds() == 93_600
    for bad in ("", "PT", "10x", "0m", "P"):
        with pytest.raises(ReplayError):
            parse_duration(bad)
    assert parse_datetime("1970-01-01T00:00:01Z") == 1000
    assert parse_datetime("1970-01-01T00:00:01") == 1000  # no zone: UTC
    with pytest.raises(ReplayError, match="ISO 8601"):
        parse_datetime("yesterday")
    assert parse_topic("t:0,2").partitions == frozenset({0, 2})
    assert parse_topic("t").covers(5)
    with pytest.raises(ReplayError, match="partition 'x'"):
        parse_topic("t:x")


def test_offsets_file_reads_an_export_and_csv(tmp_path: Path) -> None:
    plan = compute("g", [state(60)], ResetSpec(Mode.OFFSET, 30))
    exported = tmp_path / "plan.json"
    import json

    exported.write_text(json.dumps({"plans": [plan.as_dict()]}))
    assert read_offsets_file(exported) == {(T, 0): 30}
    csv = tmp_path / "plan.csv"
    csv.write_text(f"{T},0,12\n{T},1,13\n")
    assert read_offsets_file(csv) == {(T, 0): 12, (T, 1): 13}
    csv.write_text("nope\n")
    with pytest.raises(ReplayError, match="topic,partition,offset"):
        read_offsets_file(csv)
