"""A GPU stage's replay plan with and without ``--rerender``: the re-render request it carries (the
offsets it covers, its end), what the table says, and the refusal without it (pure, a fake reader)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from rich.console import Console

from ops.replay.commands import plan_target
from ops.replay.plan import PartitionState
from ops.replay.spec import Mode, ResetSpec
from ops.replay.stages import resolve
from ops.replay.table import render
from ops.runtime.config import Env
from ops.runtime.storage import LocalStore

ENV = Env({"TOPIC_PREFIX": "t.", "GPU_POOLS": json.dumps({"tiny": {"pipeline": "simulated"}})})
PREMIUM = "t.batches.tiny.premium"
NOW = 1_700_000_000_000


class FakeReader:
    """The replay reader's answers for one group: no members, a commit per partition."""

    def __init__(self, committed: Mapping[tuple[str, int], int], log_end: int = 20) -> None:
        self._committed = dict(committed)
        self._end = log_end

    def members(self, group: str) -> tuple[()]:
        return ()

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        return {tp: o for tp, o in self._committed.items() if tp[0].split(".")[-1] == group.split(".")[-1]}

    def states(
        self, topics: Iterable[str], committed: Mapping[tuple[str, int], int], at_ms: int | None = None
    ):  # type: ignore[no-untyped-def]
        return [PartitionState(t, p, o, 0, self._end) for (t, p), o in committed.items() if t in topics]

    def record_times(self, ranges):  # type: ignore[no-untyped-def]
        return {tp: (NOW + first, NOW + last) for tp, (first, last) in ranges.items()}


def _plans(rerender: bool, tmp_path: Path, target: str = "gpu:tiny"):  # type: ignore[no-untyped-def]
    reader = FakeReader({(PREMIUM, 0): 10, (PREMIUM, 1): 4, ("t.batches.tiny.free", 0): 6})
    return [
        plan_target(
            reader,
            t,
            ResetSpec(Mode.SHIFT, -3, label="-3"),
            [],
            rerender=rerender,  # type: ignore[arg-type]
            store=LocalStore(tmp_path),
            now_ms=NOW,
            rerender_ttl_ms=3_600_000,
        )  # fmt: skip
        for t in resolve(target, ENV)
    ]


def test_a_rerender_plan_carries_a_request_for_exactly_the_redone_offsets(tmp_path: Path) -> None:
    premium, free = _plans(True, tmp_path)
    assert not premium.refusals
    request = premium.rerender
    assert request is not None and request.group == "t.gpu-consumers.tiny.premium"
    windows = [(w.topic, w.partition, w.first, w.last) for w in request.windows]
    assert windows == [(PREMIUM, 0, 7, 9), (PREMIUM, 1, 1, 3)]
    assert (request.created_ms, request.expires_ms) == (NOW, NOW + 3_600_000)
    assert free.rerender is not None and free.rerender.group == "t.gpu-consumers.tiny.free"
    doc = premium.as_dict()["rerender"]
    assert doc["records"] == 6 and doc["stored_at"].endswith(
        "control/rerender/t.gpu-consumers.tiny.premium.json"
    )
    assert doc["expires_at"] == "2023-11-14T23:13:20.000Z"


def test_the_table_says_what_is_rendered_again(tmp_path: Path) -> None:
    premium, _ = _plans(True, tmp_path)
    console = Console(width=400, record=True)
    console.print(render(premium))
    text = console.export_text()
    assert f"every task of 6 batch record(s) {PREMIUM}[0]@7..9, {PREMIUM}[1]@1..3" in text
    assert "rendered again, stored output or not" in text and "ends at 2023-11-14T23:13:20.000Z" in text


def test_without_rerender_a_gpu_stage_is_refused_and_carries_no_request(tmp_path: Path) -> None:
    for plan in _plans(False, tmp_path):
        assert plan.rerender is None and plan.as_dict()["rerender"] is None
        assert "pass --rerender" in plan.refusals[0]


def test_a_gpu_group_named_by_its_group_name_is_its_stage(tmp_path: Path) -> None:
    (plan,) = _plans(False, tmp_path, target="t.gpu-consumers.tiny.free")
    assert "pass --rerender" in plan.refusals[0]
    (plan,) = _plans(True, tmp_path, target="t.gpu-consumers.tiny.free")
    assert plan.rerender is not None and plan.rerender.records == 3


def test_rerender_does_nothing_for_a_stage_that_renders_nothing(tmp_path: Path) -> None:
    reader = FakeReader({("t.tasks.requested", 0): 10})
    (target,) = resolve("batcher", ENV)
    store = LocalStore(tmp_path)
    plan = plan_target(reader, target, ResetSpec(Mode.EARLIEST), [], rerender=True, store=store, now_ms=NOW)  # type: ignore[arg-type]
    assert plan.rerender is None and not plan.refusals
