"""A rebuild of the job view without downtime: build beside the live view, verify, swap, keep the old one.

Steps (the gateway serves the live generation throughout):

1. A new generation ``g`` (``stories_g<g>``, ``tasks_g<g>``) is written by a materializer of its own
   (:mod:`ops.view.shadow`) from the earliest retained record of every view topic.
2. It catches up: its committed offsets reach the log end offsets read at one instant.
3. Verify: both generations are read and compared story by story (:mod:`ops.view.digest`; with
   ``batch_gaps`` accepted, stories differing only in batch facts past retention are expected). The live
   view moves on meanwhile, so stories that differ are compared again after both caught up once more
   (up to ``settle_rounds`` times); only differences that stay are reported.
4. Swap (unless ``verify_only`` or differences remain): the shadow catches up once more, the pointer
   moves to ``g`` (one conditional write), and readers follow within a second. The live materializer
   writes ``g`` from its next flush after it re-reads the pointer; until then it may still write the
   old generation, so the shadow keeps consuming for :data:`SWAP_GRACE_S` after the swap and then
   catches up to the log end once more. Every record the live materializer applied to the old
   generation was consumed before that end was read, so ``g`` has it too; both are idempotent
   reductions, so records both apply cost nothing.
5. The previous generation stays for ``storee view rollback``; older ones beyond ``keep`` are dropped.
   The pointer also records the live group's committed offsets at the swap (``since``): the old
   generation holds every record below them, so a rollback first brings it up to date from there
   (a materializer of its own again), then moves the pointer back, then catches up once more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ops.runtime.view_pointer import REFRESH_S, rolled_back, swapped
from ops.view.digest import Comparison, compare
from ops.view.generations import ViewGenerations
from ops.view.shadow import Offsets, Progress, ShadowBuild

SWAP_GRACE_S = 2 * REFRESH_S + 1.0
# make_shadow(generation, purpose, start_at): a ShadowBuild writing ``generation`` in a group of its own
# (named for ``purpose``), from ``start_at`` (or the log start).
ShadowFactory = Callable[[int, str, Mapping[tuple[str, int], int] | None], ShadowBuild]


@dataclass(frozen=True, slots=True)
class RebuildResult:
    generation: int  # the generation built
    live: int  # the generation live when the rebuild started
    comparison: Comparison
    swapped: bool
    events: int  # records the rebuild consumed
    stories: int  # story documents in the built generation
    build_s: float  # seconds from start to the first catch-up (the rebuild's speed)
    total_s: float


def rebuild(
    generations: ViewGenerations,
    make_shadow: ShadowFactory,
    live_group: str,
    *,
    verify_only: bool = False,
    keep: int = 1,
    timeout_s: float = 600.0,
    settle_rounds: int = 5,
    on_progress: Callable[[Progress], None] = lambda _: None,
    batch_gaps: bool = False,
) -> RebuildResult:
    """Build a new generation, verify it against the live one and, unless told not to, swap to it;
    with ``batch_gaps`` (accepted), differences in batch facts past retention are expected."""
    started = time.monotonic()
    pointer = generations.pointer()
    generation = generations.next_generation()
    generations.drop(generation)  # leftovers of a rebuild that died before it swapped
    shadow = make_shadow(generation, f"rebuild-g{generation}-{_now_ms()}", None)
    shadow.start()
    try:
        built = shadow.catch_up(timeout_s, on_progress)
        comparison = verify(
            generations, shadow, pointer.current, generation, settle_rounds, timeout_s, batch_gaps=batch_gaps
        )
        done = not verify_only and comparison.identical
        if done:
            shadow.catch_up(timeout_s, on_progress)
            since = shadow.committed(list(shadow.end_offsets()), group=live_group)
            generations.move(pointer, swapped(pointer, generation, _now_ms()), since=since)
            time.sleep(SWAP_GRACE_S)  # readers and the live materializer follow the pointer meanwhile
            shadow.catch_up(timeout_s, on_progress)
    finally:
        shadow.stop()
    if done:
        generations.prune(keep)
    elif verify_only:
        generations.drop(generation)
    return RebuildResult(
        generation=generation,
        live=pointer.current,
        comparison=comparison,
        swapped=done,
        events=built.events,
        stories=built.stories,
        build_s=built.elapsed_s,
        total_s=time.monotonic() - started,
    )


def verify(
    generations: ViewGenerations,
    shadow: ShadowBuild,
    live: int,
    built: int,
    settle_rounds: int,
    timeout_s: float,
    *,
    batch_gaps: bool = False,
) -> Comparison:
    """Compare the two generations; stories that differ are compared again after another catch-up."""
    comparison = compare(generations.snapshot(live), generations.snapshot(built), batch_gaps=batch_gaps)
    for _ in range(settle_rounds):
        if comparison.identical:
            break
        shadow.catch_up(timeout_s)
        time.sleep(REFRESH_S)  # the live materializer's next flush lands meanwhile
        comparison = compare(generations.snapshot(live), generations.snapshot(built), batch_gaps=batch_gaps)
    return comparison


def rollback(
    generations: ViewGenerations, make_shadow: ShadowFactory, live_group: str, *, timeout_s: float = 600.0
) -> tuple[int, int]:
    """Bring the previous generation up to date, move readers back to it; returns ``(from, to)``."""
    pointer = generations.pointer()
    new = rolled_back(pointer, _now_ms())
    since: Offsets | None = generations.since()
    # No offsets recorded (a pointer written by hand): replay from the log start, slower but the same.
    shadow = make_shadow(new.current, f"rollback-g{new.current}-{_now_ms()}", since)
    shadow.start()
    try:
        shadow.catch_up(timeout_s)
        now_since = shadow.committed(list(shadow.end_offsets()), group=live_group)
        generations.move(pointer, new, since=now_since)  # so rolling forward again is quick too
        time.sleep(SWAP_GRACE_S)
        shadow.catch_up(timeout_s)
    finally:
        shadow.stop()
    return pointer.current, new.current


def _now_ms() -> int:
    return int(time.time() * 1000)
