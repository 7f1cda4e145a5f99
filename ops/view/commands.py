"""``storee view rebuild [--verify-only] [--keep N]`` and ``storee view rollback``.

``rebuild`` replays every retained record of the view's topics into a new generation of the job view
while the gateway serves the live one, shows its progress, compares the two (story and task counts,
per-story digests, the fields that differ and why) and, when they are identical, swaps readers to the
new generation (the gateway and the materializer follow the pointer within a second; nothing restarts).
The previous generation is kept for ``rollback``; ``--keep N`` keeps N earlier ones in all (default 1).
``--verify-only`` builds and compares, then drops the new generation and changes nothing.

Batch facts: ``batches.*`` are kept 7 days, and they alone say when and in which batch a task waited.
When the batch records a rebuild needs are past retention (a batches partition's log start moved, or
stories were submitted longer ago than the batches are kept), ``rebuild`` refuses, saying what would
differ; ``--accept-batch-gaps`` rebuilds anyway, and verify reports the tasks that differ only in their
batch facts as expected ("batch facts past retention"), not as differences (:mod:`ops.view.gaps`).

``rollback`` brings the previous generation up to date from the offsets recorded at the swap, then
moves readers back to it.

Exit status: 0 done (swapped, verified identical, or rolled back); 2 the generations differ (nothing
was swapped); 1 an error or a refusal (batch facts past retention without ``--accept-batch-gaps``,
nothing to roll back to, a rebuild that did not catch up in time).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping

from pymongo import MongoClient
from pymongo.database import Database
from rich.console import Console
from rich.progress import Progress as Bar
from rich.table import Table

from ops.view.exceptions import ViewError
from ops.view.generations import ViewGenerations
from ops.view.rebuild import RebuildResult, ShadowFactory, rebuild, rollback
from ops.view.shadow import Progress, ShadowBuild, read_batch_gaps
from schemas.codec import Codec
from streams.app import split_policy_of
from streams.settings import StreamSettings
from streams.splitting import plan_scenes
from streams.view_store import JobViewStore

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DIFFERENT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    view = subparsers.add_parser(
        "view",
        help="rebuild the job view beside the live one and swap readers to it; roll back",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = view.add_subparsers(dest="view_action", required=True)
    build = actions.add_parser(
        "rebuild", help="rebuild into a new generation, verify, swap (exit 2: differs)"
    )
    build.add_argument("--verify-only", action="store_true", help="build and compare; swap nothing")
    build.add_argument(
        "--keep", type=int, default=1, help="earlier generations kept (default 1: the previous)"
    )
    build.add_argument("--timeout", type=float, default=1800.0, help="seconds each catch-up may take")
    build.add_argument(
        "--accept-batch-gaps",
        action="store_true",
        help="rebuild although batch records are past retention (their batch facts may differ)",
    )
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    build.set_defaults(handler=_rebuild)
    back = actions.add_parser("rollback", help="bring the previous generation up to date and swap back to it")
    back.add_argument("--timeout", type=float, default=1800.0, help="seconds the catch-up may take")
    back.set_defaults(handler=_rollback)


def shadow_factory(settings: StreamSettings, database: Database) -> ShadowFactory:
    """``make_shadow(generation, purpose, start_at)`` writing ``database`` (see :mod:`ops.view.rebuild`)."""
    policy = split_policy_of(settings)
    codec = Codec()

    def make(generation: int, purpose: str, start_at: Mapping[tuple[str, int], int] | None) -> ShadowBuild:
        return ShadowBuild(
            bootstrap=settings.bootstrap_servers,
            catalog=settings.catalog,
            codec=codec,
            store=JobViewStore(database, generation=generation),
            group=f"{settings.materializer_group}-{purpose}",
            count_scenes=lambda story: len(plan_scenes(story, policy)),
            flush_max=settings.view_flush_max,
            flush_s=settings.view_flush_s,
            start_at=start_at,
        )

    return make


def _rebuild(args: argparse.Namespace) -> int:
    if args.keep < 1:
        raise ViewError(f"--keep must be 1 or more, got {args.keep}")
    settings = StreamSettings.from_env()
    console = Console(stderr=args.json)
    gaps = read_batch_gaps(settings.bootstrap_servers, settings.catalog, int(time.time() * 1000))
    if gaps.any and not args.accept_batch_gaps:
        raise ViewError(f"refused: {gaps.refusal()}")
    if gaps.any:
        console.print(f"[yellow]accepted[/yellow]: {gaps.describe()}")
    client: MongoClient = MongoClient(settings.mongodb_url, serverSelectionTimeoutMS=10_000)
    try:
        generations = ViewGenerations(client[settings.mongodb_database])
        with Bar(console=console, transient=True) as bar:
            task = bar.add_task("rebuilding", total=None)

            def show(progress: Progress) -> None:
                rate = progress.events / progress.elapsed_s if progress.elapsed_s else 0.0
                bar.update(
                    task,
                    description=f"{progress.events:,} events ({rate:,.0f}/s), {progress.stories:,} stories, "
                    f"{progress.behind:,} records behind",
                )

            try:
                result = rebuild(
                    generations,
                    shadow_factory(settings, client[settings.mongodb_database]),
                    settings.materializer_group,
                    verify_only=args.verify_only,
                    keep=args.keep,
                    timeout_s=args.timeout,
                    on_progress=show,
                    batch_gaps=gaps.any,
                )
            except TimeoutError as exc:
                raise ViewError(str(exc)) from exc
    finally:
        client.close()
    if args.json:
        print(json.dumps(as_json(result), indent=2))
    else:
        render(console, result)
    return EXIT_OK if result.comparison.identical else EXIT_DIFFERENT


def _rollback(args: argparse.Namespace) -> int:
    settings = StreamSettings.from_env()
    client: MongoClient = MongoClient(settings.mongodb_url, serverSelectionTimeoutMS=10_000)
    try:
        generations = ViewGenerations(client[settings.mongodb_database])
        try:
            left, now = rollback(
                generations,
                shadow_factory(settings, client[settings.mongodb_database]),
                settings.materializer_group,
                timeout_s=args.timeout,
            )
        except (ValueError, TimeoutError) as exc:
            raise ViewError(str(exc)) from exc
    finally:
        client.close()
    Console().print(f"readers moved from generation {left} back to generation {now}")
    return EXIT_OK


def as_json(result: RebuildResult) -> dict[str, object]:
    c = result.comparison
    return {
        "generation": result.generation,
        "live": result.live,
        "swapped": result.swapped,
        "identical": c.identical,
        "events": result.events,
        "stories": result.stories,
        "build_s": round(result.build_s, 3),
        "total_s": round(result.total_s, 3),
        "counts": {
            "live": {"stories": c.live_stories, "tasks": c.live_tasks},
            "rebuilt": {"stories": c.shadow_stories, "tasks": c.shadow_tasks},
        },
        "differing_stories": list(c.differing),
        "expected_stories": list(c.expected),
        "expected_differences": [
            {"story_id": d.story_id, "what": d.what, "live": d.live, "rebuilt": d.shadow, "reason": d.reason}
            for d in c.expected_differences
        ],
        "differences": [
            {"story_id": d.story_id, "what": d.what, "live": d.live, "rebuilt": d.shadow, "reason": d.reason}
            for d in c.differences
        ],
    }


def render(console: Console, result: RebuildResult) -> None:
    c = result.comparison
    rate = result.events / result.build_s if result.build_s else 0.0
    console.print(
        f"generation {result.generation} built from {result.events:,} events in {result.build_s:.1f}s "
        f"({rate:,.0f} events/s, {result.stories:,} stories)"
    )
    counts = Table("", f"live (generation {result.live})", f"rebuilt (generation {result.generation})")
    counts.add_row("stories", f"{c.live_stories:,}", f"{c.shadow_stories:,}")
    counts.add_row("tasks", f"{c.live_tasks:,}", f"{c.shadow_tasks:,}")
    counts.add_row("stories that differ", "", f"{len(c.differing):,}")
    if c.expected:
        counts.add_row("stories that differ only as expected", "", f"{len(c.expected):,}")
    console.print(counts)
    if c.expected_differences:
        expected = Table("story", "what", "live", "rebuilt", "why", title="expected differences")
        for d in c.expected_differences:
            expected.add_row(d.story_id, d.what, d.live, d.shadow, d.reason)
        console.print(expected)
    if c.differences:
        diff = Table("story", "what", "live", "rebuilt", "why", title="differences")
        for d in c.differences:
            diff.add_row(d.story_id, d.what, d.live, d.shadow, d.reason)
        console.print(diff)
    if result.swapped:
        console.print(
            f"readers now use generation {result.generation}; `storee view rollback` returns to {result.live}"
        )
    elif c.identical:
        console.print("identical; --verify-only: nothing swapped, the rebuilt generation was dropped")
    else:
        console.print(f"the views differ: nothing swapped; generation {result.generation} is kept for a look")
