"""Gateway throughput: accepted submissions a second and their p50/p99 latency, with ``acks=all``.

Starts the gateway under uvicorn on a free loopback port (``ops.gateway_server``; its own topics and
database on the local stack or on ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URL``), then runs the load generator
(``ops.bench.bench_gateway_load``) in a separate process: ``--clients`` keep-alive connections each
POSTing a two-scene story to ``/v1/stories`` for ``--duration`` seconds after a warm-up. Every 202
means Kafka acknowledged the event; at the end the topic's offsets are checked against the count.
Rate limits stay on (set high), so the lease path is part of what is measured::

    .venv/bin/python -m ops.bench.bench_gateway --clients 64 --duration 10 --rounds 3

Figures are medians over rounds. Everything created is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import uuid
from collections.abc import Sequence

from confluent_kafka import TopicPartition
from pymongo import AsyncMongoClient, MongoClient

from gateway.accounts import AccountStore
from ops.gateway_server import served
from ops.runtime.kafka import admin_client, make_consumer
from ops.runtime.provisioning import ensure_topics
from schemas.records import Tier
from schemas.topics import TopicCatalog


def _stack() -> tuple[str, str]:
    from ops.stack import local_bootstrap_servers, local_mongodb_url

    return local_bootstrap_servers(), local_mongodb_url()


def _create_key(mongodb_url: str, database: str) -> str:
    async def create() -> str:
        client: AsyncMongoClient = AsyncMongoClient(mongodb_url)
        try:
            return (await AccountStore(client[database]).create(Tier.PREMIUM, "bench")).api_key
        finally:
            await client.close()

    return asyncio.run(create())


def _events_on(bootstrap: str, topic: str) -> int:
    consumer = make_consumer(bootstrap, f"bench-{uuid.uuid4().hex}")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.bench_gateway")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--idempotent", action="store_true", help="every request carries a fresh Idempotency-Key"
    )
    parser.add_argument(
        "--no-limits", action="store_true", help="switch the shared rate limits off, to see what they cost"
    )
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 1024 and 0 < args.duration <= 120 and 1 <= args.rounds <= 10):
        parser.error("bounded runs only: clients 1-1024, duration up to 120 s, rounds 1-10")

    bootstrap, mongodb_url = _stack()
    run_id = uuid.uuid4().hex[:8]
    prefix, database = f"bench{run_id}.", f"bench_{run_id}"
    catalog = TopicCatalog.build(prefix=prefix)
    admin = admin_client(bootstrap)
    ensure_topics(admin, catalog)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": database,
        "TOPIC_PREFIX": prefix,
        "OUTPUT_DIR": f"/tmp/storee-bench-{run_id}",
        "RATE_LIMIT_USER_PER_MINUTE": "100000000",
        "RATE_LIMIT_ACCOUNT_PER_MINUTE": "100000000",
        "RATE_LIMIT_ACCOUNT_BURST": "1000000",
    }
    if args.no_limits:
        env.update(RATE_LIMIT_USER_PER_MINUTE="0", RATE_LIMIT_ACCOUNT_PER_MINUTE="0")
    rows = []
    try:
        key = _create_key(mongodb_url, database)
        with served(env, workers=args.workers) as url:
            for round_number in range(1, args.rounds + 1):
                load = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "ops.bench.bench_gateway_load",
                        "--url",
                        url,
                        "--key",
                        key,
                        "--clients",
                        str(args.clients),
                        "--duration",
                        str(args.duration),
                    ]
                    + (["--idempotent"] if args.idempotent else []),
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=args.duration + 120,
                )
                result = json.loads(load.stdout)
                latencies = result["latencies"]
                row = {
                    "accepted_per_s": len(latencies) / result["elapsed_s"],
                    "p50_ms": _percentile(latencies, 0.50) * 1000,
                    "p99_ms": _percentile(latencies, 0.99) * 1000,
                    "other": {k: v for k, v in result["statuses"].items() if k != "202"},
                }
                rows.append(row)
                print(
                    f"round {round_number}: {row['accepted_per_s']:8.0f} accepted/s  "
                    f"p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  "
                    f"non-202 {row['other'] or 'none'}",
                    flush=True,
                )
        on_kafka = _events_on(bootstrap, catalog.stories_submitted)
    finally:
        admin.delete_topics(list(catalog.names))
        MongoClient(mongodb_url).drop_database(database)
    print(
        f"\nmedian of {len(rows)} rounds, {args.clients} clients, {args.workers} worker(s), acks=all"
        f"{', Idempotency-Key on every request' if args.idempotent else ''}:"
    )
    print(f"  accepted/s {statistics.median(r['accepted_per_s'] for r in rows):.0f}")
    p50, p99 = (statistics.median(r[name] for r in rows) for name in ("p50_ms", "p99_ms"))
    print(f"  p50 {p50:.1f} ms   p99 {p99:.1f} ms")
    print(f"  events on {catalog.stories_submitted}: {on_kafka} (every 202, warm-up included, is on Kafka)")
    loop = "uvloop+httptools" if importlib.util.find_spec("uvloop") else "asyncio+h11"
    print(
        f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {loop}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
