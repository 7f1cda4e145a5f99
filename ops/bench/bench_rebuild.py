"""View rebuild speed: ``storee view rebuild``'s steps over a backlog of N stories, on the local stack.

    .venv/bin/python -u -m ops.bench.bench_rebuild [--stories 1000] [--flush-max 20000]

The backlog is the one ``bench_streams`` feeds the materializer (each story: 8 scenes, its
StorySubmitted, 8 TaskRequested, 1 BatchReady per 8 tasks, TaskStarted, TaskProgress, TaskCompleted
per task: 34 events a story). The live view (generation 0) is materialized first by a materializer of
its own; then :func:`ops.view.rebuild.rebuild` builds generation 1 from the log's start, verifies it
against generation 0 and swaps. Reported: build events/s and stories/s (start to caught up), the
share of the build spent in MongoDB writes (the store's histogram), documents written, and the
verify and swap seconds. Bounded in count and time; loopback only; topics and database are dropped.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Mapping

from pymongo import MongoClient

from ops.bench.bench_streams import LINGER, stories
from ops.bench.kafka_probe import CODEC, delete_prefixed_topics, ensure_catalog, produce
from ops.bench.streams_data import completed, progress, started
from ops.runtime.view_pointer import collection_names
from ops.stack import local_bootstrap_servers, local_mongodb_url
from ops.view.generations import ViewGenerations
from ops.view.rebuild import rebuild
from ops.view.shadow import ShadowBuild
from schemas.ids import now_ms
from schemas.topics import TopicCatalog
from streams import batching
from streams.splitting import SplitPolicy, plan_scenes, split
from streams.view_store import JobViewStore


def backlog(bootstrap: str, catalog: TopicCatalog, count: int, tag: str) -> int:
    """Produce ``count`` stories' whole lives onto the view's topics; return the number of events."""
    data = stories(count, tag)
    tasks = [t for s in data for t in split(s, SplitPolicy())]
    batches = [batching.make_batch(tasks[i : i + 8], now=now_ms()) for i in range(0, len(tasks), 8)]
    results = [e for b in batches for t in b.tasks for e in (
        started(t.story_id, t.scene_index, b.batch_id, now_ms()),
        progress(t.story_id, t.scene_index, b.batch_id, now_ms(), 15),
        completed(t.story_id, t.scene_index, b.batch_id, now_ms()))]  # fmt: skip
    produce(bootstrap, catalog.stories_submitted, data, config=LINGER)
    produce(bootstrap, catalog.tasks_requested, tasks, config=LINGER)
    produce(
        bootstrap, catalog.batches("default", "premium"), batches, key=lambda b: b.batch_id, config=LINGER
    )
    produce(bootstrap, catalog.task_events, results, config=LINGER)
    return len(data) + len(tasks) + len(batches) + len(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stories", type=int, default=1000)
    parser.add_argument("--flush-max", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=540.0)
    args = parser.parse_args(argv)
    bootstrap, mongo = local_bootstrap_servers(), local_mongodb_url()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    catalog = ensure_catalog(bootstrap, prefix)
    client: MongoClient = MongoClient(mongo)
    db = client[f"bench_{prefix[:-1]}"]
    policy = SplitPolicy()
    builds: list[ShadowBuild] = []

    def make(generation: int, purpose: str, start_at: Mapping[tuple[str, int], int] | None) -> ShadowBuild:
        build = ShadowBuild(
            bootstrap=bootstrap, catalog=catalog, codec=CODEC, store=JobViewStore(db, generation=generation),
            group=f"{prefix}view-{purpose}", count_scenes=lambda s: len(plan_scenes(s, policy)),
            flush_max=args.flush_max, flush_s=0.5, start_at=start_at,
        )  # fmt: skip
        builds.append(build)
        return build

    try:
        events = backlog(bootstrap, catalog, args.stories, prefix)
        print(f"backlog: {args.stories:,} stories, {events:,} events")
        live = make(0, "live", None)  # generation 0, as the live materializer would have built it
        live.start()
        try:
            first = live.catch_up(args.timeout)
        finally:
            live.stop()
        print(f"live view built: {first.elapsed_s:.1f}s ({events / first.elapsed_s:,.0f} events/s)")
        started_at = time.perf_counter()
        result = rebuild(ViewGenerations(db), make, f"{prefix}view-live", timeout_s=args.timeout)
        total = time.perf_counter() - started_at
        shadow = builds[-1]
        sample = shadow.metrics.registry.get_sample_value
        write_s = sample("storee_streams_view_write_seconds_sum") or 0.0
        docs = sample("storee_streams_view_documents_written_total") or 0.0
        stories_n = db[collection_names(1)[0]].count_documents({})
        verify_and_swap = total - result.build_s
        print(
            f"rebuild: {result.events:,} events in {result.build_s:.1f}s = "
            f"{result.events / result.build_s:,.0f} events/s, {stories_n / result.build_s:,.1f} stories/s; "
            f"MongoDB writes {write_s:.1f}s ({write_s / result.build_s:.0%} of the build), "
            f"{docs:,.0f} documents; "
            f"verify + swap {verify_and_swap:.1f}s; identical={result.comparison.identical} "
            f"swapped={result.swapped} ({result.comparison.live_stories:,} stories, "
            f"{result.comparison.live_tasks:,} tasks)"
        )
        return 0 if result.swapped else 2
    finally:
        client.drop_database(db.name)
        client.close()
        delete_prefixed_topics(bootstrap, prefix)


if __name__ == "__main__":
    raise SystemExit(main())
