"""The dead-letter tooling's pure parts: letter ids, classification, filters, the replay plan."""

from __future__ import annotations

import pytest

from ops.dlq.exceptions import BadLetterId, DlqError
from ops.dlq.letters import Letter, LetterId, Marker, RawRecord, classify, replays_by_letter
from ops.dlq.plan import Verdict, marker_headers, plan_replay, replayed_headers
from ops.dlq.selection import LetterFilter, parse_when, select
from schemas.dlq import REPLAYED_FROM, dead_letter, is_replay_marker
from schemas.exceptions import CodecError

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _letter(partition: int = 0, offset: int = 0, **overrides: object) -> Letter:
    values: dict[str, object] = dict(
        topic="storee.tasks.requested", partition=4, offset=17, key=b"story-1", value=b"\xc3\x01bytes",
        headers=[("traceparent", b"00-abc")], error=CodecError("pool 'x' is unknown"),
        service="streams.batcher", failed_at=T0,
    )  # fmt: skip
    values.update(overrides)
    built = dead_letter(**values)  # type: ignore[arg-type]
    found = classify(RawRecord(partition, offset, T0, built.key, built.value, tuple(built.headers)))
    assert isinstance(found, Letter)
    return found


def _marker(of: str, offset: int, at: int = T0 + 1000) -> Marker:
    headers = marker_headers(LetterId.parse(of), "storee.tasks.requested", 2, 99, at)
    found = classify(RawRecord(1, offset, at, of.encode(), b"", tuple(headers)))
    assert isinstance(found, Marker)
    return found


def test_a_letter_id_is_partition_colon_offset_and_round_trips() -> None:
    assert LetterId.parse(" 2:41 ") == LetterId(2, 41)
    assert str(LetterId(2, 41)) == "2:41"
    assert LetterId(0, 9) < LetterId(1, 0) < LetterId(1, 3)


@pytest.mark.parametrize("text", ["", "2", "2:", ":4", "a:b", "-1:3", "1:2:3", "0x1:2"])
def test_a_malformed_letter_id_is_refused_naming_the_shape(text: str) -> None:
    with pytest.raises(BadLetterId, match="<partition>:<offset>"):
        LetterId.parse(text)


def test_records_are_letters_markers_or_letters_without_a_reason() -> None:
    letter = _letter(1, 5)
    assert letter.id == LetterId(1, 5) and letter.reason is not None
    assert letter.origin == "storee.tasks.requested[4]@17" and letter.size == 7
    marker = _marker("1:5", 8)
    assert (marker.of, marker.topic, marker.partition, marker.offset) == (
        "1:5",
        "storee.tasks.requested",
        2,
        99,
    )
    odd = classify(RawRecord(0, 3, T0, None, b"x", (("other", b"y"),)))
    assert isinstance(odd, Letter) and odd.reason is None and "storee.dlq" in odd.problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", T0 - 3_600_000), ("30m", T0 - 1_800_000), ("2d", T0 - 2 * 86_400_000), ("90s", T0 - 90_000),
        ("2026-01-01T00:00:00Z", T0), ("2026-01-01", T0), ("2026-01-01T01:00:00+01:00", T0),
    ],
)  # fmt: skip
def test_times_are_iso_or_a_duration_back_from_now(text: str, expected: int) -> None:
    assert parse_when(text, T0) == expected


def test_a_bad_time_names_the_option() -> None:
    with pytest.raises(DlqError, match="--since"):
        parse_when("yesterday", T0, name="--since")


def test_filters_match_origin_service_reason_and_time() -> None:
    a = _letter(0, 1)
    b = _letter(0, 2, topic="storee.stories.submitted", service="streams.splitter", failed_at=T0 + 10)
    c = _letter(1, 1, service="gpu_consumers", error=ValueError("boom"), failed_at=T0 + 20)
    every = [c, b, a]
    assert select(every, LetterFilter(), None) == [a, b, c]  # oldest first
    assert select(every, LetterFilter(topic="storee.stories.submitted"), None) == [b]
    assert select(every, LetterFilter(service="streams"), None) == [a, b]
    assert select(every, LetterFilter(service="batcher"), None) == [a]
    assert select(every, LetterFilter(reason="CODECERROR"), None) == [a, b]
    assert select(every, LetterFilter(reason="boom"), None) == [c]
    assert select(every, LetterFilter(since_ms=T0 + 5, until_ms=T0 + 15), None) == [b]
    assert select(every, LetterFilter(), 2) == [b, c]  # the newest, newest last
    assert LetterFilter().empty and not LetterFilter(reason="x").empty
    with pytest.raises(DlqError, match="--limit"):
        select(every, LetterFilter(), 0)


def test_the_plan_replays_each_letter_once_and_refuses_what_was_replayed() -> None:
    first, second = _letter(0, 1), _letter(0, 2)
    replays = replays_by_letter([_marker("0:1", 10)])
    plan = plan_replay([second, first, first], replays)
    assert [(str(s.letter.id), s.verdict) for s in plan.steps] == [
        ("0:1", Verdict.ALREADY_REPLAYED), ("0:2", Verdict.REPLAY),
    ]  # fmt: skip
    assert "--again" in plan.steps[0].note and "storee.tasks.requested[2]@99" in plan.steps[0].note
    again = plan_replay([first], replays, again=True)
    assert again.steps[0].verdict is Verdict.REPLAY and len(again.steps[0].earlier) == 1
    assert plan_replay([first], {}).to_replay[0].topic == "storee.tasks.requested"


def test_the_plan_refuses_letters_without_an_origin_or_whose_topic_is_gone() -> None:
    odd = classify(RawRecord(0, 3, T0, None, b"x", ()))
    assert isinstance(odd, Letter)
    plan = plan_replay([odd, _letter(0, 1)], {}, existing_topics=frozenset({"storee.dlq"}))
    assert [s.verdict for s in plan.steps] == [Verdict.ORIGIN_MISSING, Verdict.NO_ORIGIN]  # 0:1, 0:3
    assert not plan.to_replay and len(plan.refused) == 2


def test_the_replayed_record_is_the_original_with_where_it_came_from() -> None:
    letter = _letter(3, 8, headers=[("traceparent", b"00-abc"), (REPLAYED_FROM, b"0:1")])
    headers = replayed_headers(letter)
    assert headers == [("traceparent", b"00-abc"), (REPLAYED_FROM, b"3:8")]  # no storee.dlq.*, one origin
    assert not is_replay_marker(headers)
    assert is_replay_marker(marker_headers(letter.id, "t", 0, 1, T0))


def test_markers_are_grouped_by_letter_oldest_first() -> None:
    late, early = _marker("0:1", 11, at=T0 + 5000), _marker("0:1", 10, at=T0 + 1000)
    assert replays_by_letter([late, early, _marker("0:2", 12)]) == {
        "0:1": [early, late],
        "0:2": [_marker("0:2", 12)],
    }
