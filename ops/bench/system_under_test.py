"""The system under test of the long runs: the whole product as supervised processes on a stack of its
own, and the evidence they leave (logs, the job view, completions on ``task.events``).

:func:`started_system` starts it (own topic prefix, database, port, outputs; with ``brokers=3`` its own
three-broker Kafka cluster on free ports) with every child event recorded, and stops everything it
started. ``ops/bench/chaos.py``, ``tests/e2e/test_chaos.py`` and ``tests/e2e/test_poison.py`` use it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from confluent_kafka import KafkaError, TopicPartition
from pymongo import MongoClient
from pymongo.database import Database

from ops.demo.run import create_accounts
from ops.runtime.config import Env
from ops.runtime.kafka import make_consumer
from ops.runtime.supervisor import ChildEvent
from ops.stack import StackSettings
from ops.stack.process import port_in_use
from ops.system import System, SystemSettings, isolated_environment
from schemas.codec import Codec
from schemas.events import StoryCompleted
from schemas.exceptions import CodecError
from schemas.topics import TopicCatalog

SERVICES = ("gateway", "streams", "gpu-consumer")
BROKER = "broker"
TERMINAL_TASK = frozenset({"completed", "failed", "expired", "cancelled"})
TERMINAL_STORY = frozenset({"completed", "failed", "cancelled"})
PARAMS = {
    "width": 64,
    "height": 64,
    "num_frames": 5,
    "fps": 8,
    "num_inference_steps": 2,
    "guidance_scale": 5.0,
}
# Settings that make a small run quick to recover and never rate limited; callers may override them.
FAST_ENV = {
    "BATCH_SIZE": "4",
    "BATCH_TIMEOUT": "1",
    "RATE_LIMIT_USER_PER_MINUTE": "0",
    "RATE_LIMIT_ACCOUNT_PER_MINUTE": "0",
    "STREAMS_SESSION_TIMEOUT": "10",
    "KAFKA_SESSION_TIMEOUT_MS": "10000",
    "RETRY_BASE_S": "0.2",
    "RETRY_MAX_S": "1",
    "SHUTDOWN_GRACE_S": "10",
}


# -- the system under test ---------------------------------------------------------------------


@dataclass
class Harness:
    """A started System with its HTTP client, API keys, job view and every child event seen."""

    system: System
    http: httpx.Client
    keys: dict[str, str]
    db: Database
    catalog: TopicCatalog
    bootstrap: str
    root: Path
    events: list[ChildEvent]
    first_pids: dict[str, int]

    def auth(self, tier: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tier]}"}

    def pid(self, name: str) -> int | None:
        return self.system.supervisor.pid(name) if self.system.supervisor else None

    def exits(self, name: str | None = None) -> list[ChildEvent]:
        """Every ``exited`` event (of ``name``, or of any child): a crash or a kill."""
        return [e for e in list(self.events) if e.kind == "exited" and name in (None, e.name)]

    def restarted(self) -> dict[str, int]:
        """Services that exited since they were first started, and how often."""
        return dict(Counter(e.name for e in self.exits()))

    def log_file(self, name: str) -> Path:
        return self.system.log_dir / f"{name}.log"

    @property
    def brokers(self) -> list:
        kafka = self.system.stack.kafka
        return list(kafka.nodes) if kafka is not None and len(kafka.nodes) > 1 else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_port_base(count: int, rng: random.Random) -> int:
    for _ in range(200):
        base = rng.randrange(20_000, 40_000, 2)
        if not any(port_in_use(p) for p in range(base, base + count)):
            return base
    raise RuntimeError("no free range of ports found for the three-broker stack")


def three_broker_settings(root: Path, mongodb_url: str) -> StackSettings:
    """A three-broker cluster on free ports under ``root``, beside the running MongoDB-wire server."""
    base = _free_port_base(6, random.Random())
    return dataclasses.replace(
        StackSettings.from_env(),
        run_dir=root / "stack",
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_brokers=3,
        kafka_heap="256m",
        external_kafka=None,
        external_mongodb=mongodb_url,
    )


@contextmanager
def started_system(
    root: Path,
    mongodb_url: str,
    *,
    brokers: int = 1,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Harness]:
    """Start the stack (or reuse it) and every service as supervised children; stop them after.

    ``brokers=3`` starts a Kafka cluster of its own (replication factor 3, ``min.insync.replicas`` 2)
    on free ports under ``root``; with 1 the local stack's broker is shared (own topic prefix).
    """
    unique = os.urandom(5).hex()
    env = {**isolated_environment(root, unique, _free_port()), **FAST_ENV, **(extra_env or {})}
    if brokers == 3:
        stack_settings = three_broker_settings(root, mongodb_url)
        env["TOPIC_REPLICATION_FACTOR"] = "3"
    else:
        stack_settings = StackSettings.from_env()
    events: list[ChildEvent] = []
    system = System(
        SystemSettings.from_env(Env({**os.environ, **env})),
        stack_settings,
        on_event=events.append,
        extra_env=env,
        log_dir=root / "logs",
    )
    mongo: MongoClient = MongoClient(mongodb_url, serverSelectionTimeoutMS=10_000)
    try:
        system.start()
        system.wait_ready()
        keys = asyncio.run(create_accounts(mongodb_url, env["MONGODB_DATABASE"]))
        pids = {name: system.supervisor.pid(name) for name in SERVICES}  # type: ignore[union-attr]
        with httpx.Client(base_url=system.settings.gateway_url, timeout=15.0) as http:
            yield Harness(
                system,
                http,
                keys,
                mongo[env["MONGODB_DATABASE"]],
                TopicCatalog.build(prefix=env["TOPIC_PREFIX"]),
                system.stack.bootstrap_servers,
                root,
                events,
                {name: pid for name, pid in pids.items() if pid is not None},
            )
    finally:
        system.stop()
        mongo.drop_database(env["MONGODB_DATABASE"])
        mongo.close()


def wait_until(condition, timeout: float, interval: float = 0.25):  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it returns something truthy (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


# -- evidence from the services' logs -----------------------------------------------------------


def crash_evidence(log_file: Path, frames: int = 6) -> list[str]:
    """Why each run of a service ended, from its log, oldest first (the last run, still going, is left
    out). The supervisor writes ``--- <time> starting <name>`` at every start, so the i-th ended run
    matches the i-th ``exited`` event. A run is shown by its last traceback (the line logged before it,
    the innermost ``frames`` lines and the exception), or its last lines when it has none (a SIGKILL
    leaves no traceback)."""
    try:
        text = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    runs: list[list[str]] = []
    for line in text:
        if line.startswith("--- ") and " starting " in line:
            runs.append([line])
        elif runs:
            runs[-1].append(line)
    out = []
    for run in runs[:-1]:
        starts = [i for i, line in enumerate(run) if line.startswith("Traceback")]
        if not starts:
            errors = [line for line in run if "[ERROR]" in line or "CRITICAL" in line][-2:]
            out.append(f"{run[0]}: no traceback; its last errors and lines:\n" + "\n".join(
                line[:400] for line in [*errors, *run[-3:]]
            ))  # fmt: skip
            continue
        first = starts[-1]
        body, j = [], first + 1
        while j < len(run) and (run[j].startswith((" ", "\t")) or not run[j].strip()):
            body.append(run[j])
            j += 1
        error = run[j] if j < len(run) else "(no exception line)"
        before = run[first - 1] if first > 0 else ""
        frames_shown = [b for b in body if b.strip() and set(b.strip()) - set("^~")][-frames:]
        shown = [before, run[first], "  ...", *frames_shown, error]
        out.append(f"{run[0]}: ended after\n" + "\n".join(line[:400] for line in shown if line))
    return out


def log_lines(log_file: Path, *needles: str, limit: int = 8) -> list[str]:
    """The last ``limit`` lines of a log that contain any of ``needles``."""
    try:
        text = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [line for line in text if any(n in line for n in needles)][-limit:]


def restart_evidence(
    h: Harness, names: Sequence[str] | None = None, *, skip_sigkill: bool = False, limit: int = 4
) -> str:
    """Each service's exits with the log evidence of why (``skip_sigkill``: only exits nobody caused
    with a SIGKILL, as in a chaos run, where the kills are the harness's own)."""
    out = []
    for name in names or SERVICES:
        exits = h.exits(name)
        runs = crash_evidence(h.log_file(name))
        pairs = [(e, runs[i] if i < len(runs) else "(no log of this run)") for i, e in enumerate(exits)]
        if skip_sigkill:
            pairs = [(e, run) for e, run in pairs if "SIGKILL" not in e.detail]
        if not pairs:
            continue
        out.append(f"  {name}: {len(pairs)} exit(s)")
        for event, run in pairs[:limit]:
            out.append(f"    {event.detail}:")
            out.append("    | " + run.replace("\n", "\n    | "))
        if len(pairs) > limit:
            out.append(f"    ... and {len(pairs) - limit} more")
    return "\n".join(out)


# -- the job view ---------------------------------------------------------------------------------


def view_of(db: Database, story_ids: Sequence[str]) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """The story documents and each story's task documents, for ``story_ids``."""
    ids = list(story_ids)
    stories: dict[str, dict] = {}
    tasks: dict[str, list[dict]] = defaultdict(list)
    for i in range(0, len(ids), 200):
        chunk = ids[i : i + 200]
        for doc in db["stories"].find({"_id": {"$in": chunk}}):
            stories[doc["_id"]] = doc
        for doc in db["tasks"].find({"story_id": {"$in": chunk}}):
            tasks[doc["story_id"]].append(doc)
    return stories, tasks


def twice_in_view(story: dict, tasks: list[dict]) -> list[str]:
    """How a story shows a completion twice in the view (empty: it does not)."""
    problems = []
    for task in tasks:
        if len(task.get("outputs") or []) > 1:
            problems.append(f"task {task['_id']} has {len(task['outputs'])} outputs")
    named = Counter(o.get("task_id") for o in story.get("outputs") or [])
    problems += [f"story outputs name {t} {n} times" for t, n in named.items() if n > 1]
    count, done = story.get("task_count") or 0, (story.get("counts") or {}).get("completed", 0)
    if count and done > count:
        problems.append(f"counts.completed={done} > task_count={count}")
    return problems


def open_in_view(story: dict | None, tasks: list[dict]) -> list[str]:
    """Why a story is not finished in the view (empty: it and every task it has are terminal)."""
    if story is None:
        return ["no story document"]
    problems = []
    if story.get("status") not in TERMINAL_STORY:
        problems.append(f"story status {story.get('status')!r} (counts {story.get('counts')})")
    problems += [
        f"task {t['_id']} {t.get('status')!r}" for t in tasks if t.get("status") not in TERMINAL_TASK
    ]
    count = story.get("task_count")
    if story.get("status") in TERMINAL_STORY and count is not None and len(tasks) < count:
        problems.append(f"{count - len(tasks)} of {count} tasks have no document")
    return problems


def story_completions(bootstrap: str, catalog: TopicCatalog, story_ids: set[str], timeout: float = 60.0):
    """Distinct StoryCompleted event ids per story on ``task.events``, read from the beginning."""
    codec = Codec()
    group = f"chaos-reader-{os.urandom(4).hex()}"
    consumer = make_consumer(bootstrap, group, **{"enable.partition.eof": True})
    meta = consumer.list_topics(catalog.task_events, timeout=10).topics[catalog.task_events]
    parts = [TopicPartition(catalog.task_events, p, -2) for p in meta.partitions]  # -2: the beginning
    consumer.assign(parts)
    found: dict[str, set[str]] = defaultdict(set)
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(ended) < len(parts) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        ended.add(message.partition() or 0)
                    continue
                value = message.value()
                try:
                    event = codec.decode(value) if value else None
                except CodecError:
                    continue
                if isinstance(event, StoryCompleted) and event.story_id in story_ids:
                    found[event.story_id].add(event.event_id)
    finally:
        consumer.close()
    return found, len(ended) == len(parts)
