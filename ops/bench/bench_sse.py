"""Live progress streams: how many one gateway process holds, its memory per stream, and push latency.

Starts one gateway under uvicorn (``ops.gateway_server``; its own topics and database on the local
stack), writes ``N`` running stories into its job view by hand (with the materializer's indexes), and
opens one ``GET /v1/stories/{id}/events`` per story from a single asyncio client (raw HTTP/1.1, so the
client's CPU stays small). Once every stream has its snapshot, the gateway's resident memory is read
from ``/proc`` and compared with the same process before the streams opened. Then ``--events``
TaskProgress events for random open stories are produced to ``task.events`` one at a time, each stamped
with the time it was produced, and every stream reports when the event reached it: the push latency
from the log to the client, through the process's one fan-out reader. Rounds run for each
``--streams`` count, side by side in one run::

    .venv/bin/python -m ops.bench.bench_sse --streams 100,500,1000 --events 300

Bounded: at most 5,000 streams and 5,000 events a round, and ``--timeout`` seconds a round.
Everything created is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient, MongoClient

from gateway.accounts import AccountStore, NewAccount
from ops.gateway_server import HOST, served_process
from ops.runtime.kafka import DurableProducer, admin_client
from ops.runtime.provisioning import ensure_topics
from schemas.codec import Codec
from schemas.events import TaskProgress
from schemas.ids import new_event_id, now_ms, task_id
from schemas.records import Tier
from schemas.topics import TopicCatalog
from streams.view_store import JobViewStore

CODEC = Codec()


def rss_kib(pid: int) -> int:
    """The resident memory of ``pid`` in KiB (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _stack() -> tuple[str, str]:
    from ops.stack import local_bootstrap_servers, local_mongodb_url

    return local_bootstrap_servers(), local_mongodb_url()


def _account(mongodb_url: str, database: str) -> NewAccount:
    async def create() -> NewAccount:
        client: AsyncMongoClient = AsyncMongoClient(mongodb_url)
        try:
            return await AccountStore(client[database]).create(Tier.PREMIUM, "bench-sse")
        finally:
            await client.close()

    return asyncio.run(create())


def _stories(db: Any, account_id: str, count: int) -> list[str]:
    ids = [f"sse-{uuid.uuid4().hex[:16]}" for _ in range(count)]
    counts = {"queued": 0, "running": 1, "completed": 0, "failed": 0, "expired": 0, "cancelled": 0}
    base = {"account_id": account_id, "tier": "premium", "task_type": "text_to_video", "model": "default",
            "status": "running", "task_count": 1, "progress": 0.0, "submitted_at": now_ms(), "outputs": [],
            "counts": counts}  # fmt: skip
    db.stories.insert_many([{"_id": story_id, **base} for story_id in ids])
    db.tasks.insert_many([
        {"_id": task_id(s, 0), "story_id": s, "account_id": account_id, "scene_index": 0, "status": "running",
         "pool": "default", "tier": "premium"}
        for s in ids
    ])  # fmt: skip
    return ids


class Stream:
    """One open event stream: its snapshot's arrival, and the latency of each progress event seen."""

    def __init__(self, story_id: str) -> None:
        self.story_id = story_id
        self.snapshot = asyncio.Event()
        self.latencies_ms: list[float] = []
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, key: str) -> None:
        request = (f"GET /v1/stories/{self.story_id}/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                   f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n")  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            reader, self.writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
            self.writer.write(request.encode())
            status = (await reader.readline()).split()
            if len(status) >= 2 and status[1] == b"200":
                break
            self.writer.close()
            # 503 while the gateway's fan-out first connects to Kafka: wait for it, with a deadline.
            if len(status) < 2 or status[1] != b"503" or time.monotonic() > deadline:
                raise RuntimeError(f"stream {self.story_id}: {status}")
            await asyncio.sleep(0.2)
        name = ""
        while line := await reader.readline():
            text = line.decode().rstrip("\r\n")
            if text.startswith("event:"):
                name = text[6:].strip()
            elif text.startswith("data:") and name == "snapshot":
                self.snapshot.set()
            elif text.startswith("data:") and name == "task.progress":
                sent = json.loads(text[5:])["event_time"]
                self.latencies_ms.append(time.time() * 1000 - sent)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _round(
    port: int, pid: int, key: str, story_ids: list[str], producer: DurableProducer, topic: str,
    events: int, timeout_s: float,
) -> dict[str, Any]:  # fmt: skip
    before = rss_kib(pid)
    streams = [Stream(story_id) for story_id in story_ids]
    tasks = [asyncio.create_task(stream.run(port, key)) for stream in streams]
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(s.snapshot.wait() for s in streams)), timeout_s)
    opened_s = time.perf_counter() - started
    await asyncio.sleep(1.0)  # let the process settle before reading its memory
    after = rss_kib(pid)
    rng = random.Random(7)
    for n in range(events):
        story_id = rng.choice(story_ids)
        event = TaskProgress(event_id=new_event_id(), story_id=story_id, task_id=task_id(story_id, 0),
                             batch_id="b-bench", consumer_id="bench", step=n % 10 + 1,
                             total_steps=10)  # fmt: skip
        producer.produce(topic, CODEC.encode(event), key=story_id.encode())
        await asyncio.to_thread(producer.flush, 10)  # on the log now: the latency starts at event_time
        await asyncio.sleep(0.01)  # a steady trickle, not one burst
    deadline = time.monotonic() + timeout_s
    while sum(len(s.latencies_ms) for s in streams) < events and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for stream in streams:
        stream.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(ms for s in streams for ms in s.latencies_ms)
    return {
        "streams": len(streams),
        "open_s": round(opened_s, 2),
        "rss_before_mib": round(before / 1024, 1),
        "rss_after_mib": round(after / 1024, 1),
        "kib_per_stream": round((after - before) / len(streams), 1),
        "events": events,
        "received": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1)
        if latencies
        else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.bench_sse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--streams", default="100,500,1000", help="stream counts, one round each")
    parser.add_argument("--events", type=int, default=400, help="progress events produced a round")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a round may take")
    parser.add_argument("--no-limits", action="store_true", help="switch the shared rate limits off")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.streams.split(",")]
    if not all(1 <= c <= 5000 for c in counts) or not 1 <= args.events <= 5000 or args.timeout > 600:
        parser.error("bounded runs only: 1-5000 streams, 1-5000 events, at most 600 s a round")

    bootstrap, mongodb_url = _stack()
    run_id = uuid.uuid4().hex[:8]
    prefix, database = f"bench{run_id}.", f"bench_{run_id}"
    catalog = TopicCatalog.build(prefix=prefix)
    admin = admin_client(bootstrap)
    ensure_topics(admin, catalog)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_URL": mongodb_url, "MONGODB_DATABASE": database,
        "TOPIC_PREFIX": prefix, "OUTPUT_DIR": f"/tmp/storee-bench-{run_id}",
        "RATE_LIMIT_USER_PER_MINUTE": "100000000", "RATE_LIMIT_ACCOUNT_PER_MINUTE": "100000000",
        "RATE_LIMIT_ACCOUNT_BURST": "1000000", "SSE_MAX_STREAMS_PER_ACCOUNT": "100000",
    }  # fmt: skip
    if args.no_limits:
        env.update(RATE_LIMIT_USER_PER_MINUTE="0", RATE_LIMIT_ACCOUNT_PER_MINUTE="0")
    mongo: MongoClient = MongoClient(mongodb_url)
    producer = DurableProducer(bootstrap)
    rows = []
    try:
        account = _account(mongodb_url, database)
        JobViewStore(mongo[database]).ensure_indexes()  # as the materializer does: the reads use them
        with served_process(env) as (url, pid):
            port = int(url.rsplit(":", 1)[1])
            warm = _stories(mongo[database], account.account_id, 1)
            asyncio.run(_round(port, pid, account.api_key, warm, producer, catalog.task_events, 1, 30))
            for count in counts:
                story_ids = _stories(mongo[database], account.account_id, count)
                row = asyncio.run(
                    _round(port, pid, account.api_key, story_ids, producer, catalog.task_events,
                           args.events, args.timeout)
                )  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        producer.close()
        mongo.drop_database(database)
        mongo.close()
        admin.delete_topics(list(catalog.names))
    print(
        f"# {platform.machine()} {platform.python_version()}, one gateway process, 12 task.events partitions"
    )
    print("| streams | opened in | gateway RSS before → after | per stream | events received | p50 | p99 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        memory = f"{r['rss_before_mib']} → {r['rss_after_mib']} MiB | {r['kib_per_stream']} KiB"
        print(f"| {r['streams']:,} | {r['open_s']} s | {memory} | {r['received']}/{r['events']} | "
              f"{r['p50_ms']} ms | {r['p99_ms']} ms |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
