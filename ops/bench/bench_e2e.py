"""End to end on the tiny model: N stories of M scenes through the whole running system.

Starts the real processes (gateway, streams worker, one GPU consumer on CPU) with their own topics,
database and port, warms the pipeline with one story, then submits N stories of M scenes over HTTP
(premium and free alternating) and follows them in the job view. Prints submit-to-StoryCompleted
latency (p50, p99; from each story's submitted_at and finished_at in the view), throughput, and the
share of wall time spent outside the pipeline calls (1 - pipeline seconds / wall seconds, pipeline
seconds summed from TaskCompleted.gpu_seconds over distinct tasks)::

    .venv/bin/python -m ops.bench.bench_e2e --stories 8 --scenes 3

Bounded: it gives up after --timeout seconds and always stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from pymongo import MongoClient

from ops.demo.run import create_accounts
from ops.runtime.config import Env
from ops.runtime.kafka import make_consumer
from ops.stack import StackSettings
from ops.system import System, SystemSettings, isolated_environment
from schemas.codec import Codec
from schemas.events import TaskCompleted
from schemas.topics import TopicCatalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=8)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="width and height of each clip")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batch-timeout", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="storee-bench-e2e-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **isolated_environment(root, os.urandom(5).hex(), port),
        "BATCH_SIZE": str(args.batch_size),
        "BATCH_TIMEOUT": str(args.batch_timeout),
    }
    system = System(
        SystemSettings.from_env(Env({**os.environ, **env})),
        StackSettings.from_env(),
        extra_env=env,
        log_dir=root / "logs",
    )
    params = {
        "width": args.size,
        "height": args.size,
        "num_frames": args.frames,
        "fps": 8,
        "num_inference_steps": args.steps,
        "guidance_scale": 5.0,
    }
    mongo: MongoClient = MongoClient(system.stack.mongodb_url)
    db = mongo[env["MONGODB_DATABASE"]]
    try:
        system.start()
        system.wait_ready()
        keys = asyncio.run(create_accounts(system.stack.mongodb_url, env["MONGODB_DATABASE"]))
        with httpx.Client(base_url=system.settings.gateway_url, timeout=30.0) as http:

            def submit(index: int, tier: str) -> str:
                body = {
                    "title": f"bench {index}",
                    "task_type": "text_to_video",
                    "model": "default",
                    "params": params,
                    "scenes": [{"prompt": f"story {index} scene {s}"} for s in range(args.scenes)],
                }
                response = http.post(
                    "/v1/stories", json=body, headers={"Authorization": f"Bearer {keys[tier]}"}
                )
                response.raise_for_status()
                return response.json()["story_id"]

            def wait(story_ids: list[str]) -> None:
                deadline = time.monotonic() + args.timeout
                while time.monotonic() < deadline:
                    docs = list(db["stories"].find({"_id": {"$in": story_ids}}, {"status": 1}))
                    if len(docs) == len(story_ids) and all(
                        d["status"] in ("completed", "failed") for d in docs
                    ):
                        return
                    time.sleep(0.1)
                raise SystemExit(f"stories not finished within {args.timeout:.0f}s (logs in {root / 'logs'})")

            wait([submit(-1, "premium")])  # warm-up: model loaded, first batch run
            started = time.monotonic()
            stories = [submit(i, "premium" if i % 2 == 0 else "free") for i in range(args.stories)]
            wait(stories)
            wall = time.monotonic() - started
        docs = {d["_id"]: d for d in db["stories"].find({"_id": {"$in": stories}})}
        failed = [s for s, d in docs.items() if d["status"] != "completed"]
        latencies = sorted((d["finished_at"] - d["submitted_at"]) / 1000 for d in docs.values())
        pipeline = _pipeline_seconds(
            system.stack.bootstrap_servers, TopicCatalog.build(prefix=env["TOPIC_PREFIX"]), set(stories)
        )
    finally:
        system.stop()
        mongo.drop_database(env["MONGODB_DATABASE"])
        mongo.close()

    scenes = args.stories * args.scenes
    print(
        f"{args.stories} stories x {args.scenes} scenes ({args.size}x{args.size}, {args.frames} frames, "
        f"{args.steps} steps) on the tiny model, 1 GPU consumer on CPU, batch size {args.batch_size}, "
        f"batch timeout {args.batch_timeout}s; {len(failed)} failed"
    )
    print(
        f"submit-to-StoryCompleted latency: p50 {statistics.median(latencies):.2f}s  "
        f"p99 {_percentile(latencies, 0.99):.2f}s  max {latencies[-1]:.2f}s"
    )
    print(
        f"throughput: {scenes / wall:.2f} scenes/s, {args.stories / wall * 60:.1f} stories/min "
        f"(wall {wall:.1f}s)"
    )
    print(
        f"pipeline time {pipeline:.1f}s of {wall:.1f}s wall: orchestration overhead "
        f"{max(0.0, 1 - pipeline / wall):.1%} of wall time"
    )


def _pipeline_seconds(bootstrap: str, catalog: TopicCatalog, stories: set[str]) -> float:
    """Pipeline seconds spent on the stories' tasks, one TaskCompleted per task."""
    codec = Codec()
    consumer = make_consumer(bootstrap, f"bench-e2e-{os.urandom(4).hex()}", **{"enable.partition.eof": True})
    consumer.subscribe([catalog.task_events])
    seconds: dict[str, float] = {}
    ended: set[tuple[str | None, int | None]] = set()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                ended.add((message.topic(), message.partition()))
                if len(ended) >= len(consumer.assignment()):
                    break
                continue
            event = codec.decode(message.value() or b"")
            if isinstance(event, TaskCompleted) and event.story_id in stories:
                seconds.setdefault(event.task_id, event.gpu_seconds)
    finally:
        consumer.close()
    return sum(seconds.values())


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


if __name__ == "__main__":
    main()
