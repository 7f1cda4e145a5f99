"""Helpers for the GPU consumer tests: batches, event readers, consumer processes, conditions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.codec import Codec
from schemas.events import BatchReady, Event
from schemas.ids import batch_id, new_event_id, task_id
from schemas.records import BatchTask, GenerationParams, TaskType, Tier
from schemas.topics import TopicCatalog
from tests.waiting import wait_for

POOL = "tiny"
REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def params(**overrides: object) -> GenerationParams:
    values: dict[str, object] = dict(
        width=32, height=32, num_frames=5, fps=8, num_inference_steps=2, guidance_scale=5.0, seed=None
    )
    values.update(overrides)
    return GenerationParams(**values)  # type: ignore[arg-type]


def make_batch(
    prompts: list[str], *, tier: Tier = Tier.PREMIUM, deadline: int | None = None, **overrides: object
) -> BatchReady:
    """One batch of one new story's scenes."""
    return mixed_batch({new_event_id(): prompts}, tier=tier, deadline=deadline, **overrides)


def mixed_batch(
    stories: dict[str, list[str]],
    *,
    tier: Tier = Tier.PREMIUM,
    deadline: int | None = None,
    **overrides: object,
) -> BatchReady:
    """One batch holding the scenes of several stories (``{story_id: [prompt, ...]}``), in that order."""
    shared = params(**overrides)
    tasks = tuple(
        BatchTask(
            task_id=task_id(story, index),
            story_id=story,
            account_id="acct-test",
            sequence=1,
            scene_index=index,
            prompt=prompt,
            params=GenerationParams(**{**shared.to_record(), "seed": 1000 + index}),
            deadline=deadline,
        )
        for story, prompts in stories.items()
        for index, prompt in enumerate(prompts)
    )
    return BatchReady(
        sequence=1,
        batch_id=batch_id(task.task_id for task in tasks),
        pool=POOL,
        tier=tier,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="tiny-wan",
        params=shared,
        tasks=tasks,
        deadline=deadline,
    )


def publish(bootstrap: str, catalog: TopicCatalog, batch: BatchReady) -> tuple[int, int]:
    """Produce ``batch`` to its tier's topic; return (partition, offset)."""
    producer = DurableProducer(bootstrap)
    try:
        message = producer.produce_sync(
            catalog.batches(POOL, batch.tier), Codec().encode(batch), key=batch.batch_id.encode()
        )
        return message.partition(), message.offset()
    finally:
        producer.close()


@dataclass
class EventReader:
    """Reads every partition of a topic from the beginning, decoding events as they arrive (or not)."""

    bootstrap: str
    topic: str
    partitions: int
    decode: bool = True
    events: list[Event] = field(default_factory=list)
    raw: list[Message] = field(default_factory=list)
    codec: Codec = field(default_factory=Codec)

    def __post_init__(self) -> None:
        self._consumer: Consumer = make_consumer(self.bootstrap, f"reader-{new_event_id()}")
        self._consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])

    def read(self, duration: float = 0.2) -> list[Event]:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.05)
            if message is not None and message.error() is None:
                if self.decode:
                    self.events.append(self.codec.decode(message.value()))
                else:
                    self.raw.append(message)
        return self.events

    def of(self, kind: type[T]) -> list[T]:
        return [event for event in self.events if isinstance(event, kind)]

    def wait(self, condition: Callable[[EventReader], bool], timeout: float, what: str) -> None:
        def check() -> bool:
            self.read()
            return condition(self)

        wait_for(check, timeout, what, interval=0)

    def close(self) -> None:
        self._consumer.close()


def committed(bootstrap: str, group: str, topic: str, partition: int) -> int:
    """The group's committed offset of one partition (-1001 when none), read without joining."""
    consumer = make_consumer(bootstrap, group)
    try:
        (tp,) = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def group_members(admin: AdminClient, group: str) -> list[str]:
    """Member ids of a group that is Stable (empty while it rebalances)."""
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if str(description.state).split(".")[-1] != "STABLE":
        return []
    return sorted(member.member_id for member in description.members)


class ConsumerProcesses:
    """``python -m gpu_consumers gpu-consumer`` processes with test settings, killed at the end."""

    def __init__(self, bootstrap: str, prefix: str, model_dir: Path, tmp: Path) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.model_dir = model_dir
        self.output_dir = tmp / "outputs"
        self.tmp = tmp
        # One group per tier; the tests produce premium batches, so they watch the premium group.
        self.group = f"{prefix}gpu-consumers.{POOL}.premium"
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, index: int, **overrides: str) -> dict[str, str]:
        pools = {
            POOL: {
                "pipeline": "text_to_video",
                "model": str(self.model_dir),
                "dtype": "float32",
                "device_policy": "cpu",
                "max_batch_size": 8,
                "call_kwargs": {"max_sequence_length": 16},
            }
        }
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            TOPIC_PREFIX=self.prefix,
            GPU_POOLS=json.dumps(pools),
            OUTPUT_DIR=str(self.output_dir),
            STOREE_HOME=str(self.tmp / "home"),  # the members' instance slot locks, per test
            STOREE_MODEL_CACHE=str(self.tmp / "models"),
            READY_FILE=str(self.tmp / f"ready-{index}"),
            KAFKA_SESSION_TIMEOUT_MS="6000",
            KAFKA_MAX_POLL_INTERVAL_MS="60000",
            PROGRESS_INTERVAL_S="0.2",
            SHUTDOWN_GRACE_S="60",
            OMP_NUM_THREADS="1",
        )
        env.update(overrides)
        return env

    def start(self, **overrides: str) -> subprocess.Popen[bytes]:
        index = len(self.procs)
        log = open(self.tmp / f"consumer-{index}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpu_consumers", "gpu-consumer", "--pool", POOL, "--devices", "cpu"],
            cwd=REPO,
            env=self.env(index, **overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc.log_path = self.tmp / f"consumer-{index}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
        index = self.procs.index(proc)
        ready = self.tmp / f"ready-{index}"

        def check() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"consumer exited with {proc.returncode}:\n{self.log(proc)}")
            return ready.is_file()

        wait_for(check, timeout, f"consumer {index} to be ready")

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return Path(proc.log_path).read_text(errors="replace")[-4000:]  # type: ignore[attr-defined]

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
