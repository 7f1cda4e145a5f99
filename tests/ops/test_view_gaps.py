"""``storee view rebuild --accept-batch-gaps``: when batch records are past retention (pure decision),
the refusal that says what would differ, and verify counting those differences as expected."""

from __future__ import annotations

import argparse

import pytest

from ops.view import commands
from ops.view.digest import EXPECTED_REASON, compare
from ops.view.exceptions import ViewError
from ops.view.gaps import FLAG, BatchLog, batch_gaps
from tests.ops.test_view_rebuild import _docs, _story, _task

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
NOW = 1_700_000_000_000
FREE = "s.batches.default.free"
PREMIUM = "s.batches.default.premium"


def _logs(*starts: int) -> list[BatchLog]:
    return [BatchLog(PREMIUM if i % 2 == 0 else FREE, i // 2, start, 100) for i, start in enumerate(starts)]


def test_no_gaps_while_every_batch_log_starts_at_0_and_no_story_is_older_than_kept() -> None:
    gaps = batch_gaps(_logs(0, 0, 0, 0), WEEK_MS, 0, NOW)
    assert not gaps.any


def test_a_moved_log_start_is_a_gap_naming_the_partition() -> None:
    gaps = batch_gaps(_logs(0, 0, 0, 12), WEEK_MS, 0, NOW)
    assert gaps.any and gaps.deleted == (BatchLog(FREE, 1, 12, 100),)
    assert f"{FREE}[1] starts at 12" in gaps.describe()


def test_stories_older_than_the_batches_retention_are_a_gap() -> None:
    gaps = batch_gaps(_logs(0, 0), WEEK_MS, 3, NOW)
    assert gaps.any and gaps.cutoff_ms == NOW - WEEK_MS
    assert "3 stories were submitted before 2023-11-07T22:13:20Z" in gaps.describe()
    assert "(7 days)" in gaps.describe()


def test_batches_kept_forever_have_no_older_stories() -> None:
    assert not batch_gaps(_logs(0), -1, 5, NOW).any


def test_the_refusal_says_what_would_differ_and_the_flag() -> None:
    refusal = batch_gaps(_logs(4), WEEK_MS, 0, NOW).refusal()
    assert "batch_id, batched_at, consumer_id" in refusal and "batch choice" in refusal
    assert FLAG in refusal and "expected" in refusal


def test_with_gaps_accepted_batch_fact_differences_are_expected_not_failures() -> None:
    live = {
        "old": _docs(_story("old"), _task("old")),
        "s1": _docs(_story(status="completed"), _task()),
    }
    shadow = {
        "old": _docs(_story("old"), _task("old", batch_id=None, batched_at=None)),
        "s1": _docs(_story(status="running"), _task()),
    }
    strict = compare(live, shadow)
    assert strict.differing == ("old", "s1") and not strict.expected
    accepted = compare(live, shadow, batch_gaps=True)
    assert accepted.differing == ("s1",) and accepted.expected == ("old",)
    assert {d.what for d in accepted.expected_differences} == {"task old:0.batch_id", "task old:0.batched_at"}
    assert {d.reason for d in accepted.expected_differences} == {EXPECTED_REASON}
    assert not accepted.identical  # s1 still differs for another reason
    only_batch = compare({"old": live["old"]}, {"old": shadow["old"]}, batch_gaps=True)
    assert only_batch.identical and only_batch.expected == ("old",)


def test_a_story_with_batch_and_other_differences_is_not_expected() -> None:
    live = {"old": _docs(_story("old", status="completed"), _task("old"))}
    shadow = {"old": _docs(_story("old", status="running"), _task("old", batch_id=None))}
    accepted = compare(live, shadow, batch_gaps=True)
    assert accepted.differing == ("old",) and not accepted.expected


def test_the_command_refuses_gaps_without_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    gaps = batch_gaps(_logs(9), WEEK_MS, 0, NOW)
    monkeypatch.setattr(commands, "read_batch_gaps", lambda *args: gaps)
    monkeypatch.setattr(commands.StreamSettings, "from_env", classmethod(lambda cls: _Settings()))
    args = argparse.Namespace(keep=1, json=True, accept_batch_gaps=False, verify_only=False, timeout=1.0)
    with pytest.raises(ViewError, match=f"refused: .*{PREMIUM}\\[0\\] starts at 9.*{FLAG}"):
        commands._rebuild(args)


class _Settings:
    bootstrap_servers = "unused:0"
    catalog = None
    mongodb_url = "mongodb://unused"
