"""Stream-processor figures on the real local broker and MongoDB-wire server.

    .venv/bin/python -m ops.bench.bench_streams [--stories 1250] [--rounds 3]

1. Split + batch throughput, tasks per second, on one Faust worker (``python -m streams``, materializer
   off), next to a plain confluent-kafka consume-transform-produce loop doing the same work with the
   same pure functions on the same data (its open batches are in memory only, with no changelog: the
   ratio is what Faust plus durable batch state cost).
2. Batch latency: a full batch after its last task; a partial batch after its first (BATCH_TIMEOUT=1s),
   from the tasks' record timestamps to the BatchReady's.
3. View events per second: the materializer over a prepared backlog, into a fresh database.

Every load is bounded in count and time; only loopback. Our machines are small and shared: compare
figures within one run, and read medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from pymongo import MongoClient

from ops.bench.kafka_probe import (
    CODEC,
    TopicReader,
    committed_offsets,
    delete_prefixed_topics,
    end_offsets,
    ensure_catalog,
    member_partitions,
    produce,
)
from ops.bench.stream_worker import Worker, worker_env
from ops.bench.streams_data import completed, params, progress, started, story
from ops.bench.waiting import wait_for
from ops.runtime.kafka import DurableProducer, make_consumer
from ops.stack import local_bootstrap_servers, local_mongodb_url
from schemas.events import BatchReady, StorySubmitted, TaskRequested
from schemas.ids import new_event_id, now_ms
from schemas.records import Scene, Tier
from streams import batching
from streams.metrics import StreamMetrics
from streams.splitting import SplitPolicy, plan_scenes, split
from streams.view_loop import Materializer, view_topics
from streams.view_store import JobViewStore

SCENES = 8


def stories(count: int, tag: str) -> list[StorySubmitted]:
    now = now_ms()
    return [
        story(
            f"{tag}-{i}",
            event_id=new_event_id(),
            account_id=f"acct-{i % 50}",
            tier=Tier.PREMIUM if i % 4 else Tier.FREE,
            title="Bench",
            params=params(seed=1),
            scenes=tuple(Scene(index=s, prompt=f"scene {s} of story {i}, cinematic") for s in range(SCENES)),
            submitted_at=now,
            event_time=now,
        )
        for i in range(count)
    ]


# Load goes out in 20 ms batches: producing it fast is not what this bench measures.
LINGER = {"linger.ms": 20}


def batched_tasks(reader: TopicReader) -> int:
    reader.poll(0.5)
    return sum(len(b.tasks) for b in {b.batch_id: b for b in reader.events(BatchReady)}.values())


def faust_throughput(bootstrap: str, mongo: str, count: int, tmp: Path) -> float:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    catalog = ensure_catalog(bootstrap, prefix)
    env = worker_env(
        bootstrap, mongo, "bench_unused", prefix, tmp / prefix, BATCH_SIZE=8, STREAMS_MATERIALIZER="false"
    )
    worker = Worker(env, tmp / f"{prefix}log")
    reader = TopicReader(
        bootstrap, [catalog.batches("default", t) for t in ("premium", "free")], f"b-{prefix}"
    )
    try:
        worker.start()
        wait_for(
            lambda: member_partitions(bootstrap, f"{prefix}streams", catalog.tasks_requested), 90, "worker"
        )
        data = stories(count, prefix)
        started_at = time.perf_counter()
        produce(bootstrap, catalog.stories_submitted, data, config=LINGER)
        wait_for(lambda: batched_tasks(reader) >= count * SCENES, 300, "all tasks batched", interval=0.2)
        return count * SCENES / (time.perf_counter() - started_at)
    finally:
        worker.stop()
        reader.close()
        delete_prefixed_topics(bootstrap, prefix)


def plain_throughput(bootstrap: str, count: int) -> float:
    """The same split and batch functions in a confluent-kafka consume-transform-produce loop."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    catalog = ensure_catalog(bootstrap, prefix)
    consumer = make_consumer(bootstrap, f"{prefix}plain")
    producer = DurableProducer(bootstrap, **{"linger.ms": 5})
    policy, split_policy = batching.BatchPolicy(size=8), SplitPolicy()
    pending: dict[tuple[int, str], batching.Pending] = {}
    done = 0
    try:
        consumer.subscribe([catalog.stories_submitted, catalog.tasks_requested])
        produce(bootstrap, catalog.stories_submitted, stories(count, prefix), config=LINGER)
        started_at = time.perf_counter()
        deadline = time.monotonic() + 300
        while done < count * SCENES and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.1):
                if message.error():
                    continue
                event = CODEC.decode(message.value() or b"")
                if isinstance(event, StorySubmitted):
                    for task in split(event, split_policy):
                        producer.produce(catalog.tasks_requested, CODEC.encode(task), key=message.key())
                elif isinstance(event, TaskRequested):
                    key = (message.partition() or 0, batching.signature(event))
                    current = pending.get(key, batching.Pending())
                    state, closed = batching.add(
                        current, event, offset=message.offset() or 0, now=now_ms(), policy=policy
                    )
                    pending[key] = batching.confirm(state, closed[0].batch_id) if closed else state
                    for batch in closed:
                        producer.produce(
                            catalog.batches("default", batch.tier), CODEC.encode(batch), key=key[1]
                        )
                        done += len(batch.tasks)
            producer.flush(30)
            consumer.commit(asynchronous=True)
        return count * SCENES / (time.perf_counter() - started_at)
    finally:
        consumer.close()
        producer.close()
        delete_prefixed_topics(bootstrap, prefix)


def latencies(bootstrap: str, mongo: str, samples: int, tmp: Path) -> tuple[list[float], list[float]]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    catalog = ensure_catalog(bootstrap, prefix)
    env = worker_env(bootstrap, mongo, "bench_unused", prefix, tmp / prefix, BATCH_SIZE=8, BATCH_TIMEOUT=1,
                     STREAMS_MATERIALIZER="false")  # fmt: skip
    worker = Worker(env, tmp / f"{prefix}log")
    reader = TopicReader(bootstrap, [catalog.batches("default", "premium")], f"b-{prefix}")
    producer = DurableProducer(bootstrap, **{"linger.ms": 0})
    full: list[float] = []
    partial: list[float] = []
    try:
        worker.start()
        wait_for(
            lambda: member_partitions(bootstrap, f"{prefix}streams", catalog.tasks_requested), 90, "worker"
        )
        for i in range(samples * 2):
            size = 8 if i % 2 == 0 else 3
            now = now_ms()
            story = stories(1, f"{prefix}{i}")[0]
            story = StorySubmitted(**{**{f: getattr(story, f) for f in story.__dataclass_fields__},
                                      "scenes": story.scenes[:size], "tier": Tier.PREMIUM})  # fmt: skip
            stamps = []
            for task in split(story, SplitPolicy(), now=now):
                message = producer.produce_sync(
                    catalog.tasks_requested, CODEC.encode(task), key=story.story_id
                )
                stamps.append(message.timestamp()[1])

            def out(story_id: str = story.story_id) -> int | None:
                reader.poll(0.05)
                for record in reader.records:
                    batch = CODEC.decode(record.value())
                    if isinstance(batch, BatchReady) and batch.tasks[0].story_id == story_id:
                        return record.timestamp()[1]
                return None

            at = wait_for(out, 30, "the batch", interval=0.0)
            (full if size == 8 else partial).append(at - (max(stamps) if size == 8 else min(stamps)))
        return full, partial
    finally:
        worker.stop()
        reader.close()
        producer.close()
        delete_prefixed_topics(bootstrap, prefix)


def view_throughput(bootstrap: str, mongo: str, count: int) -> tuple[float, int]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    catalog = ensure_catalog(bootstrap, prefix)
    client: MongoClient = MongoClient(mongo)
    db = client[f"bench_{prefix[:-1]}"]
    events = 0
    try:
        data = stories(count, prefix)
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
        events = len(data) + len(tasks) + len(batches) + len(results)
        ends = {tp: end for tp, end in end_offsets(bootstrap, view_topics(catalog)).items() if end > 0}
        group = f"{prefix}view"
        materializer = Materializer(
            consumer_factory=lambda: make_consumer(bootstrap, group), catalog=catalog, codec=CODEC,
            store=JobViewStore(db), producer=DurableProducer(bootstrap), metrics=StreamMetrics(),
            count_scenes=lambda s: len(plan_scenes(s, SplitPolicy())), flush_s=0.5,
        )  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=materializer.run, args=(stop,))
        started_at = time.perf_counter()
        thread.start()
        try:

            def caught_up() -> bool:
                done = committed_offsets(bootstrap, group, list(ends))
                return all(done[tp] >= end for tp, end in ends.items())

            wait_for(caught_up, 600, "the view to catch up", interval=0.5)
            elapsed = time.perf_counter() - started_at
        finally:
            stop.set()
            thread.join(60)
        return events / elapsed, db["tasks"].count_documents({})
    finally:
        client.drop_database(db.name)
        client.close()
        delete_prefixed_topics(bootstrap, prefix)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stories", type=int, default=1250, help="stories of 8 scenes per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=30)
    parser.add_argument("--view-stories", type=int, default=100)
    args = parser.parse_args(argv)
    bootstrap, mongo = local_bootstrap_servers(), local_mongodb_url()
    with tempfile.TemporaryDirectory() as tmp:
        faust_rates, plain_rates = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same background load
            faust_rates.append(faust_throughput(bootstrap, mongo, args.stories, Path(tmp)))
            plain_rates.append(plain_throughput(bootstrap, args.stories))
        f, p = statistics.median(faust_rates), statistics.median(plain_rates)
        print(f"split+batch tasks/s  faust worker: {f:8.0f}  {[round(r) for r in faust_rates]}")
        print(f"split+batch tasks/s  plain loop  : {p:8.0f}  {[round(r) for r in plain_rates]}")
        print(f"faust / plain ratio               : {f / p:8.2f}")
        full, partial = latencies(bootstrap, mongo, args.latency_samples, Path(tmp))
        print(f"full batch after last task ms     : p50 {_pct(full, 0.5):.0f}  p99 {_pct(full, 0.99):.0f}")
        print(f"partial batch after first task ms : p50 {_pct(partial, .5):.0f}  p99 {_pct(partial, .99):.0f}"
              f"  (BATCH_TIMEOUT 1000, n={len(partial)})")  # fmt: skip
    rate, docs = view_throughput(bootstrap, mongo, args.view_stories)
    print(f"view events/s                     : {rate:8.0f}  ({docs} task documents)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
