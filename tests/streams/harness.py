"""Helpers for the stream integration tests: a worker subprocess, topic readers, waiting on conditions."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from ops.runtime.kafka import DurableProducer, admin_client, make_consumer, raise_for_error
from ops.runtime.provisioning import ensure_topics
from schemas.codec import Codec
from schemas.events import BatchReady
from schemas.ids import now_ms
from schemas.topics import TopicCatalog
from streams.splitting import SplitPolicy, split
from tests.streams.factories import story

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
# Worker logs are kept per test; STOREE_TEST_WORKER_LOGLEVEL=info shows Faust's rebalances and recovery.
LOGLEVEL = os.environ.get("STOREE_TEST_WORKER_LOGLEVEL", "warning")
CODEC = Codec()


def ensure_catalog(bootstrap: str, prefix: str, **partitions: int) -> TopicCatalog:
    """Create the catalog's topics for ``prefix`` (auto-create is off on our broker)."""
    catalog = TopicCatalog.build(prefix=prefix)
    ensure_topics(admin_client(bootstrap), catalog)
    return catalog


def delete_prefixed_topics(bootstrap: str, prefix: str) -> None:
    admin = admin_client(bootstrap)
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):  # cleanup must not mask the test's own result
                future.result(timeout=30)


try:  # loaded here, not in the child: a child forked from a threaded process should do next to nothing
    _LIBC: Any = ctypes.CDLL("libc.so.6")
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """A worker must not outlive a test run that was killed before its ``finally`` ran (Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Worker:
    """A ``python -m streams`` subprocess with its own environment and log file."""

    def __init__(self, env: dict[str, str], log_path: Path, module: str = "streams") -> None:
        self.env = env
        self.log_path = log_path
        self.module = module  # run as ``python -m <module>``: streams, or a test's variant of it
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "--skip-topics", "--loglevel", LOGLEVEL],
                env=self.env, cwd=self.log_path.parent, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the crash the restart tests simulate."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def worker_env(
    bootstrap: str, mongo_url: str, database: str, prefix: str, datadir: Path, **extra: Any
) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MONGODB_URL": mongo_url,
        "MONGODB_DATABASE": database,
        "TOPIC_PREFIX": prefix,
        "STREAMS_DATADIR": str(datadir),
        "BATCH_TIMEOUT": "0.5",
        "STREAMS_SESSION_TIMEOUT": "6",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


@contextmanager
def running(*workers: Worker) -> Iterator[None]:
    try:
        for worker in workers:
            worker.start()
        yield
    finally:
        for worker in workers:
            worker.stop()


def produce(bootstrap: str, topic: str, events: Sequence[Any], key: Callable[[Any], str]) -> None:
    producer = DurableProducer(bootstrap)
    for event in events:
        producer.produce(topic, CODEC.encode(event), key=key(event).encode())
    assert producer.flush(30) == 0
    producer.close()


def produce_to_partitions(bootstrap: str, topic: str, events: Sequence[Any]) -> None:
    """Produce event ``i`` to partition ``i`` (keyed by its story id, as the catalog says)."""
    producer = DurableProducer(bootstrap)
    for partition, event in enumerate(events):
        producer.produce(topic, CODEC.encode(event), key=event.story_id.encode(), partition=partition)  # type: ignore[attr-defined]
    assert producer.flush(30) == 0
    producer.close()


def one_task_per_partition(bootstrap: str, topic: str, name: str, partitions: int) -> set[str]:
    """Produce one task to each partition of tasks.requested (stories ``<name>-<p>``); return their ids."""
    now = now_ms()
    tasks = [
        split(story(f"{name}-{p}", n_scenes=1, event_time=now, submitted_at=now), SplitPolicy())[0]
        for p in range(partitions)
    ]
    produce_to_partitions(bootstrap, topic, tasks)
    return {task.task_id for task in tasks}


def not_batched(reader: TopicReader, wanted: set[str]) -> set[str]:
    """The tasks of ``wanted`` that no BatchReady ``reader`` has seen carries yet."""
    reader.poll()
    return wanted - {task.task_id for batch in reader.events(BatchReady) for task in batch.tasks}


def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = DurableProducer(bootstrap)
    producer.produce(topic, value, key=key)
    assert producer.flush(30) == 0


class TopicReader:
    """Reads every record of some topics from the beginning, accumulating them."""

    def __init__(self, bootstrap: str, topics: list[str], group: str) -> None:
        self.consumer = make_consumer(bootstrap, group)
        self.consumer.subscribe(topics)
        self.records: list[Any] = []

    def poll(self, seconds: float = 0.2) -> list[Any]:
        for message in self.consumer.consume(num_messages=1000, timeout=seconds):
            self.records.append(raise_for_error(message))
        return self.records

    def read_to_end(self, timeout: float = 60) -> list[Any]:
        """Poll until this reader has consumed up to the current end of every partition it reads."""
        deadline = time.monotonic() + timeout
        ends: dict[tuple[str, int], int] | None = None
        while True:
            self.poll(0.2)
            assignment = self.consumer.assignment()
            if assignment:
                if ends is None:
                    ends = {(tp.topic, tp.partition): self.consumer.get_watermark_offsets(tp, timeout=10)[1]
                            for tp in assignment}  # fmt: skip
                positions = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.position(assignment)}
                if all(end == 0 or positions.get(key, -1) >= end for key, end in ends.items()):
                    return self.records
            if time.monotonic() > deadline:
                raise AssertionError(f"reader did not reach the end of its topics within {timeout:.0f}s")

    def events(self, cls: type[T]) -> list[T]:
        decoded = [CODEC.decode(record.value()) for record in self.records]
        return [event for event in decoded if isinstance(event, cls)]

    def close(self) -> None:
        self.consumer.close()


@functools.lru_cache(maxsize=4)
def _admin(bootstrap: str) -> Any:
    # One admin client for the run: creating and destroying one per poll made librdkafka's destroy hang.
    return admin_client(bootstrap)


def committed_offsets(
    bootstrap: str, group: str, partitions: list[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """A group's committed offsets, asked through the admin API (a consumer in the group could hang
    librdkafka's destroy while the group is active)."""
    admin = _admin(bootstrap)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    result = admin.list_consumer_group_offsets([request], request_timeout=10)[group].result(timeout=15)
    return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in result.topic_partitions}


def member_partitions(bootstrap: str, group: str, topic: str) -> list[set[int]]:
    """The partitions of ``topic`` each member of a consumer group holds (empty list while rebalancing)."""
    admin = _admin(bootstrap)
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    if str(description.state) != "ConsumerGroupState.STABLE" and "STABLE" not in str(description.state):
        return []
    return [
        {tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic}
        for member in description.members
    ]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Sum of a group's committed offsets on a topic."""
    return sum(committed_offsets(bootstrap, group, [(topic, p) for p in range(partitions)]).values())


def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of ``topics``."""
    consumer = make_consumer(bootstrap, f"ends-{os.getpid()}")
    try:
        ends = {}
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                ends[(topic, partition)] = consumer.get_watermark_offsets(tp, timeout=10)[1]
        return ends
    finally:
        consumer.close()
