"""GPU consumer scheduling and overhead, with the simulated backend on the local broker.

Figures (issue 6):

(a) both tiers backlogged, 2 consumers: premium:free batches processed (target 3.0 +/- 0.3);
(b) only free backlogged, 2 consumers: free throughput against the all-capacity throughput of (a)
    (target: within 5%);
(c) 1 consumer, 1 s batches: median consumer overhead per batch outside the pipeline call (target
    under 10 ms) and busy ratio, pipeline time over wall time (target at least 95%);
(d) 1, 2 and 4 consumers on 200 ms batches: throughput relative to 1 consumer (targets 1.9x, 3.5x).

Consumers run in this process as threads (each a full member: its own Kafka consumer and producer,
pipeline thread and output store writes), so their metrics can be read directly. Each scenario gets
fresh topics, waits for a stable group, then counts batches over a fixed window. Run::

    .venv/bin/python -m ops.bench.bench_gpu_consumers [--window 15]

Loopback only; topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from gpu_consumers.consumer import GpuConsumer
from gpu_consumers.member import build_member
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.pipelines import load_runner
from gpu_consumers.settings import GpuConsumerSettings
from ops.runtime.config import Env
from ops.runtime.kafka import DurableProducer, admin_client
from ops.runtime.provisioning import ensure_topics
from schemas.codec import Codec
from schemas.events import BatchReady
from schemas.ids import batch_id, new_event_id, task_id
from schemas.records import BatchTask, GenerationParams, TaskType, Tier
from schemas.topics import TopicCatalog

POOL = "bench"
TASKS_PER_BATCH = 4
PARAMS = GenerationParams(
    width=832, height=480, num_frames=81, fps=16, num_inference_steps=4, guidance_scale=5.0, seed=None
)


@dataclass(frozen=True)
class Window:
    """Batches each consumer started during the window, by tier, and the raw figures behind them."""

    seconds: float
    premium: int
    free: int
    overheads: list[float]
    busy: float

    @property
    def total_rate(self) -> float:
        return (self.premium + self.free) / self.seconds


def batch(tier: Tier) -> BatchReady:
    story = new_event_id()
    tasks = tuple(
        BatchTask(
            task_id=task_id(story, i),
            story_id=story,
            account_id="acct-bench",
            sequence=1,
            scene_index=i,
            prompt=f"scene {i}: a red fox runs through fresh snow at dawn",
            params=PARAMS,
        )
        for i in range(TASKS_PER_BATCH)
    )
    return BatchReady(
        batch_id=batch_id(t.task_id for t in tasks),
        pool=POOL,
        tier=tier,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="simulated",
        params=PARAMS,
        tasks=tasks,
    )


def fill(bootstrap: str, catalog: TopicCatalog, counts: dict[Tier, int]) -> None:
    producer, codec = DurableProducer(bootstrap), Codec()
    for tier, count in counts.items():
        for _ in range(count):
            event = batch(tier)
            producer.produce(catalog.batches(POOL, tier), codec.encode(event), key=event.batch_id.encode())
    if producer.flush(60):
        raise RuntimeError("backlog not acknowledged")
    producer.close()


@contextmanager
def consumers(
    bootstrap: str, count: int, seconds_per_batch: float, out_dir: str
) -> Iterator[tuple[TopicCatalog, list[GpuConsumer], list[ConsumerMetrics]]]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    catalog = TopicCatalog.build(prefix=prefix, pools=(POOL,))
    admin = admin_client(bootstrap)
    ensure_topics(admin, catalog)
    pools = {POOL: {"pipeline": "simulated", "simulated_seconds": seconds_per_batch, "max_batch_size": 8}}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOPIC_PREFIX": prefix,
        "GPU_POOLS": json.dumps(pools),
        "OUTPUT_DIR": out_dir,
        "KAFKA_SESSION_TIMEOUT_MS": "10000",
    }
    settings = GpuConsumerSettings.from_env(Env(env))
    pool = settings.pool(POOL)
    members, producers, threads = [], [], []
    metrics = []
    try:
        for index in range(count):
            member, producer, metric = build_member(
                settings, pool, load_runner(pool, "cpu"), consumer_id=f"bench-{index}+simulated"
            )
            members.append(member)
            producers.append(producer)
            metrics.append(metric)
            thread = threading.Thread(target=member.run, name=f"member-{index}", daemon=True)
            thread.start()
            threads.append(thread)
        yield catalog, members, metrics
    finally:
        for member in members:
            member.stop()
        for thread in threads:
            thread.join(timeout=30)
        for producer in producers:
            producer.close()
        for future in admin.delete_topics(list(catalog.names)).values():
            with contextlib.suppress(Exception):  # a benchmark's cleanup must not hide its figures
                future.result(timeout=30)


def wait_stable(
    admin: AdminClient, groups: list[str], members: list[GpuConsumer], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(member.ready.is_set() for member in members):
            descriptions = [
                future.result(timeout=10) for future in admin.describe_consumer_groups(groups).values()
            ]
            if all(str(d.state).endswith("STABLE") and len(d.members) == len(members) for d in descriptions):
                return
        time.sleep(0.2)
    raise RuntimeError(f"groups {groups} did not stabilise with {len(members)} members")


def measure(metrics: list[ConsumerMetrics], seconds: float) -> Window:
    """Count batches started by every consumer over ``seconds`` of wall time; busy ratio by overlap."""
    before = [(m.batches_by_tier.copy(), len(m.overheads)) for m in metrics]
    start = time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    end = time.monotonic()
    after = [(m.batches_by_tier.copy(), list(m.overheads)) for m in metrics]
    # Wait for the calls running at the window's end to finish, so their share inside it counts.
    settle = time.monotonic() + 10
    while time.monotonic() < settle and not all(
        m.pipeline_calls and m.pipeline_calls[-1][1] >= end for m in metrics
    ):
        time.sleep(0.05)
    premium = free = 0
    overheads: list[float] = []
    busy = []
    for metric, (tiers, seen), (tiers_after, overheads_after) in zip(metrics, before, after, strict=True):
        premium += tiers_after[Tier.PREMIUM.value] - tiers[Tier.PREMIUM.value]
        free += tiers_after[Tier.FREE.value] - tiers[Tier.FREE.value]
        overheads.extend(overheads_after[seen:])
        inside = sum(max(0.0, min(e, end) - max(s, start)) for s, e in list(metric.pipeline_calls))
        busy.append(inside / (end - start))
    return Window(end - start, premium, free, overheads, statistics.mean(busy))


def scenario(
    bootstrap: str,
    count: int,
    seconds_per_batch: float,
    backlog: dict[Tier, int],
    window: float,
    out_dir: str,
) -> Window:
    with consumers(bootstrap, count, seconds_per_batch, out_dir) as (catalog, members, metrics):
        fill(bootstrap, catalog, backlog)
        groups = [f"{catalog.prefix}gpu-consumers.{POOL}.{tier.value}" for tier in Tier]
        wait_stable(admin_client(bootstrap), groups, members)
        time.sleep(min(2.0, window / 5))  # let a first batch per member pass, so none is warming up
        return measure(metrics, window)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured per scenario")
    parser.add_argument(
        "--bootstrap", default=None, help="Kafka bootstrap servers (default: the local stack)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    bootstrap = args.bootstrap or GpuConsumerSettings.from_env().bootstrap_servers
    w = args.window
    # Backlogs sized to outlast the window at full speed, with margin.
    short = int(w / 0.2 * 4 * 1.5) + 50
    machine = f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores (shared)"
    print(f"{machine}, window {w:.0f}s per scenario")
    with tempfile.TemporaryDirectory(prefix="storee-bench-") as out:
        a = scenario(bootstrap, 2, 0.2, {Tier.PREMIUM: short, Tier.FREE: short}, w, out)
        ratio = a.premium / max(a.free, 1)
        print(
            f"(a) both tiers, 2 consumers, 0.2 s batches: premium {a.premium}, free {a.free}, "
            f"ratio {ratio:.2f} (target 3.0 +/- 0.3), {a.total_rate:.2f} batches/s"
        )
        b = scenario(bootstrap, 2, 0.2, {Tier.FREE: short}, w, out)
        share = b.free / b.seconds / a.total_rate
        print(
            f"(b) free only, 2 consumers: {b.free / b.seconds:.2f} batches/s = {share:.1%} of all-capacity "
            f"{a.total_rate:.2f} (target >= 95%)"
        )
        c = scenario(bootstrap, 1, 1.0, {Tier.FREE: int(w) + 20}, w, out)
        median_ms = statistics.median(c.overheads) * 1000 if c.overheads else float("nan")
        p90_ms = statistics.quantiles(c.overheads, n=10)[-1] * 1000 if len(c.overheads) > 1 else float("nan")
        print(
            f"(c) 1 consumer, 1 s batches: overhead per batch median {median_ms:.1f} ms, p90 {p90_ms:.1f} ms "
            f"(target < 10 ms), busy ratio {c.busy:.1%} (target >= 95%), {len(c.overheads)} batches"
        )
        rates = {}
        for count in (1, 2, 4):
            d = scenario(bootstrap, count, 0.2, {Tier.FREE: int(w / 0.2 * count * 1.5) + 50}, w, out)
            rates[count] = d.total_rate
        print(
            f"(d) 0.2 s batches: 1 consumer {rates[1]:.2f}/s, 2: {rates[2]:.2f}/s "
            f"({rates[2] / rates[1]:.2f}x, target 1.9x), "
            f"4: {rates[4]:.2f}/s ({rates[4] / rates[1]:.2f}x, target 3.5x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
