"""Poison records for the running system: every kind, and the Hypothesis runs that draw them.

:data:`KINDS` names each kind's strategy (``poison_work.py``: stories, tasks, batches;
``poison_events.py``: task events, wrong topics, undecodable bytes, replays); what a poison is and
what the system owes for it is in ``poison_values.py``, the judging in ``poison_verdict.py``.

Kinds are drawn by separate Hypothesis runs (:func:`generate`), ``derandomize=True`` and generation
only (no shrinking, no database), so a run is repeatable: the same seed-free settings give the same
records (ids are numbered in draw order; only times differ). A batch of N is split evenly across the
kinds, each kind collected with ``max_examples`` = its share: Hypothesis's first example of any test is
the simplest one, so one ``@given`` run with ``max_examples=1`` over a list strategy would give a list of
the simplest records only; collecting per kind keeps every kind in even a small batch and lets the
later examples vary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from tests.e2e.poison_events import event_bad, event_orphan, replay, undecodable, wrong_topic
from tests.e2e.poison_values import Forge, Poison
from tests.e2e.poison_work import (
    batch_bad,
    batch_orphan,
    batch_unrunnable,
    story_bad,
    story_odd,
    story_unrunnable,
    task_bad,
    task_orphan,
    task_unrunnable,
)

KINDS: dict[str, Callable[[Forge], st.SearchStrategy[Poison | None]]] = {
    "story.bad": story_bad,
    "task.bad": task_bad,
    "batch.bad": batch_bad,
    "event.bad": event_bad,
    "undecodable": undecodable,
    "wrong_topic": wrong_topic,
    "task.unrunnable": task_unrunnable,
    "story.unrunnable": story_unrunnable,
    "batch.unrunnable": batch_unrunnable,
    "task.orphan": task_orphan,
    "batch.orphan": batch_orphan,
    "event.orphan": event_orphan,
    "replay": replay,
    "story.odd": story_odd,
}


def shares(total: int, kinds: Sequence[str] = tuple(KINDS)) -> dict[str, int]:
    """``total`` records split evenly across ``kinds``, the first kinds taking the remainder."""
    base, extra = divmod(total, len(kinds))
    return {kind: base + (1 if i < extra else 0) for i, kind in enumerate(kinds)}


def collect(kind: str, forge: Forge, count: int) -> list[Poison]:
    """``count`` poisons of one kind, drawn by a derandomized, generate-only Hypothesis run."""
    found: list[Poison] = []
    if count <= 0:
        return found

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(KINDS[kind](forge))
    def draw_one(poison: Poison | None) -> None:
        if poison is None:
            reject()  # encode refused it (counted in forge.skipped): draw another
        found.append(poison)  # type: ignore[arg-type]

    draw_one()
    return found


def generate(forge: Forge, total: int) -> list[Poison]:
    """About ``total`` poisons over every kind (fewer when Hypothesis runs out of distinct examples)."""
    return [poison for kind, count in shares(total).items() for poison in collect(kind, forge, count)]
