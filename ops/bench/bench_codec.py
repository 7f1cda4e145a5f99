"""Codec throughput: encode and decode events per second for TaskRequested and BatchReady.

Run on one core, as the target (50,000 encodes and 50,000 decodes of a TaskRequested a second) is
stated for one core of our 2-core machines::

    taskset -c 0 .venv/bin/python -m ops.bench.bench_codec

Each figure is the median of several rounds. The ``fastavro only`` rows time the same codec with its
generated fast path switched off, for comparison.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import fastavro

from schemas.codec import Codec
from schemas.events import BatchReady, Event, TaskRequested
from schemas.ids import batch_id, new_event_id, now_ms, task_id
from schemas.records import BatchTask, GenerationParams, TaskType, Tier

PROMPT = (
    "A red fox trots through fresh snow at dawn, low sun behind pine trees, breath visible in the cold air, "
    "cinematic lighting, shallow depth of field, 35mm film look"
)


def _params(seed: int | None) -> GenerationParams:
    return GenerationParams(
        width=832,
        height=480,
        num_frames=81,
        fps=16,
        num_inference_steps=30,
        guidance_scale=5.0,
        seed=seed,
        negative_prompt="blurry, low quality",
    )


def task_requested() -> TaskRequested:
    story = new_event_id()
    return TaskRequested(
        story_id=story,
        task_id=task_id(story, 3),
        account_id="acct-00042",
        tier=Tier.PREMIUM,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        scene_index=3,
        task_count=8,
        prompt=PROMPT,
        params=_params(1234),
        sequence=1,
        deadline=now_ms() + 600_000,
    )


def batch_ready(size: int) -> BatchReady:
    story = new_event_id()
    tasks = tuple(
        BatchTask(
            task_id=task_id(story, i),
            story_id=story,
            account_id="acct-00042",
            sequence=1,
            scene_index=i,
            prompt=PROMPT,
            params=_params(1000 + i),
            deadline=now_ms() + 600_000,
        )
        for i in range(size)
    )
    return BatchReady(
        batch_id=batch_id(t.task_id for t in tasks),
        pool="default",
        tier=Tier.PREMIUM,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        params=_params(None),
        tasks=tasks,
        sequence=1,
        deadline=now_ms() + 600_000,
    )


def rate(operation: Callable[[], object], rounds: int, round_seconds: float) -> float:
    """Median operations per second over ``rounds`` rounds of about ``round_seconds`` each."""
    count = 1
    while True:  # calibrate: how many calls fill a round
        start = time.perf_counter()
        for _ in range(count):
            operation()
        elapsed = time.perf_counter() - start
        if elapsed >= round_seconds / 4:
            break
        count *= 2
    count = max(1, int(count * round_seconds / elapsed))
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            operation()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.bench_codec", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds per figure; the median is printed")
    parser.add_argument("--round-seconds", type=float, default=0.5, help="length of one round")
    parser.add_argument("--batch-size", type=int, default=8, help="tasks in the BatchReady")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"python {platform.python_version()}, fastavro {fastavro.__version__}, {platform.machine()}, "
        f"usable cores: {cores}, median of {args.rounds} rounds of {args.round_seconds}s"
    )
    samples: list[tuple[str, Event]] = [
        ("TaskRequested", task_requested()),
        (f"BatchReady ({args.batch_size} tasks)", batch_ready(args.batch_size)),
    ]
    print(f"{'event':<24} {'codec path':<14} {'bytes':>6} {'encode/s':>11} {'decode/s':>11}")
    for path, codec in (("generated", Codec()), ("fastavro only", Codec(compiled=False))):
        for label, event in samples:
            data = codec.encode(event)
            assert codec.decode(data) == event, "round trip failed"
            encode = rate(functools.partial(codec.encode, event), args.rounds, args.round_seconds)
            decode = rate(functools.partial(codec.decode, data), args.rounds, args.round_seconds)
            print(f"{label:<24} {path:<14} {len(data):>6} {encode:>11,.0f} {decode:>11,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
