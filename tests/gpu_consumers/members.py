"""In-process group members against the real broker, with a runner the test controls.

A member built here is the real shell (``build_member``: consumers, producer, watcher, executor,
static membership) around a :class:`ScriptedRunner`, which renders instantly, records its calls, can
hold a call until the test lets it go, and can misbehave on purpose. Nothing Kafka does is faked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from gpu_consumers.consumer import GpuConsumer
from gpu_consumers.member import build_member
from gpu_consumers.metrics import ConsumerMetrics
from gpu_consumers.pipelines.batch import BatchRequest, RenderedMedia, StepCallback
from gpu_consumers.settings import GpuConsumerSettings
from ops.runtime.config import Env
from ops.runtime.kafka import DurableProducer
from schemas.codec import Codec
from schemas.events import StoryCancelled
from schemas.records import TaskType
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import POOL
from tests.waiting import wait_for


class ScriptedRunner:
    """Renders a small placeholder clip per task at once; the test may hold calls or break outputs."""

    task_types = frozenset({TaskType.TEXT_TO_VIDEO})
    simulated = False
    device = "cpu"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.started = threading.Event()  # set when a call begins
        self.gate: threading.Event | None = None  # when set up, a call waits for it before finishing
        self.swap_ids_on_calls: set[int] = set()  # calls (0-based) whose outputs name the wrong tasks
        self._lock = threading.Lock()

    def run(
        self, request: BatchRequest, work_dir: Path, on_step: StepCallback | None = None
    ) -> list[RenderedMedia]:
        with self._lock:
            call = len(self.calls)
            self.calls.append([task.task_id for task in request.tasks])
        self.started.set()
        if self.gate is not None and not self.gate.wait(60):
            raise RuntimeError("the test never opened the gate")
        if on_step is not None:
            on_step(1, 1)
        outputs = []
        for index, task in enumerate(request.tasks):
            path = work_dir / f"{index:04d}.mp4"
            path.write_bytes(f"clip of {task.task_id} seed {task.seed}".encode())
            outputs.append(RenderedMedia(task.task_id, path, "video/mp4", "mp4", 0.5, task.seed))
        if call in self.swap_ids_on_calls:
            outputs.reverse()
        return outputs

    def rendered(self) -> list[str]:
        with self._lock:
            return [task for call in self.calls for task in call]


@dataclass
class Member:
    consumer: GpuConsumer
    metrics: ConsumerMetrics
    runner: ScriptedRunner
    settings: GpuConsumerSettings
    thread: threading.Thread
    exit_codes: list[int] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


def member_settings(
    bootstrap: str, prefix: str, tmp: Path, *, max_batch_size: int = 8, **env: str
) -> GpuConsumerSettings:
    pools = {POOL: {"pipeline": "simulated", "simulated_seconds": 0, "max_batch_size": max_batch_size}}
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOPIC_PREFIX": prefix,
        "GPU_POOLS": json.dumps(pools),
        "OUTPUT_DIR": str(tmp / "outputs"),
        "STOREE_HOME": str(tmp / "home"),
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "PROGRESS_INTERVAL_S": "0",
        "SHUTDOWN_GRACE_S": "30",
        **env,
    }
    return GpuConsumerSettings.from_env(Env(values))


@contextmanager
def running_member(
    bootstrap: str,
    prefix: str,
    tmp: Path,
    runner: ScriptedRunner | None = None,
    *,
    max_batch_size: int = 8,
    **env: str,
) -> Iterator[Member]:
    """A member consuming on its own thread, ready (in every tier group) when this yields."""
    settings = member_settings(bootstrap, prefix, tmp, max_batch_size=max_batch_size, **env)
    runner = runner or ScriptedRunner()
    consumer, producer, metrics = build_member(
        settings, settings.pool(POOL), runner, consumer_id="test/1/cpu"
    )
    member = Member(consumer, metrics, runner, settings, threading.Thread(target=lambda: None))
    member.thread = threading.Thread(target=lambda: member.exit_codes.append(consumer.run()), daemon=True)
    member.thread.start()
    try:
        wait_for(lambda: consumer.ready.is_set() or not member.running, 60, "the member to join its groups")
        assert member.running, "the member stopped before it was ready"
        yield member
    finally:
        consumer.stop()
        member.thread.join(timeout=60)
        producer.close()


def cancel(bootstrap: str, catalog: TopicCatalog, story_id: str) -> None:
    """Produce StoryCancelled as the gateway does: on task.events, keyed by the story."""
    producer = DurableProducer(bootstrap)
    try:
        event = StoryCancelled(story_id=story_id, account_id="acct-test", reason="the test cancelled it")
        producer.produce_sync(catalog.task_events, Codec().encode(event), key=story_id.encode())
    finally:
        producer.close()


def assignment(admin: AdminClient, group: str) -> dict[str, set[int]]:
    """Partitions per member of a Stable group, by group instance id (member id for dynamic members)."""
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if str(description.state).split(".")[-1] != "STABLE":
        return {}
    return {
        member.group_instance_id or member.member_id: {
            tp.partition for tp in member.assignment.topic_partitions
        }
        for member in description.members
    }


def when(condition: Callable[[], object], timeout: float, what: str) -> None:
    wait_for(condition, timeout, what, interval=0.05)
