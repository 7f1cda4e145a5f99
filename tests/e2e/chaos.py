"""Helpers for the chaos tests: one place that words a chaos report with its evidence, and prints a
summary line past pytest's capture. The harness itself (submissions, kills, the drain and the counts)
is :mod:`ops.bench.chaos`, shared with ``make chaos``.
"""

from __future__ import annotations

import os
from typing import Any

from ops.bench.chaos import ChaosReport
from ops.bench.system_under_test import Harness, restart_evidence

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "3"))
SEED = int(os.environ.get("CHAOS_SEED", "7"))
PER_ROUND = int(os.environ.get("CHAOS_PER_ROUND", "8"))
PACE_S = float(os.environ.get("CHAOS_PACE", "0.3"))


def show(request: Any, text: str) -> None:
    """Print ``text`` on the terminal even while pytest captures output."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + text)


def explain(report: ChaosReport, h: Harness) -> str:
    """The summary, every kill, every lost/stuck/twice/failed story, and why unexpected exits happened."""
    parts = [report.summary(), report.details()]
    if report.unexpected_exits:
        evidence = restart_evidence(h, list(report.unexpected_exits), skip_sigkill=True)
        parts.append("unexpected exits (services nobody killed):\n" + evidence)
    if not report.completions_read:
        parts.append("(task.events could not be read to its end: StoryCompleted counts may be short)")
    return "\n".join(part for part in parts if part)


def counts(report: ChaosReport) -> dict[str, int]:
    return {"lost": len(report.lost), "twice": len(report.twice), "stuck": len(report.stuck)}
