"""Chaos: SIGKILL a random service at a random moment while stories are being submitted.

Every round submits a bounded number of small stories over HTTP (premium and free alternating, one or
two scenes each, paced) and, at a submission index drawn from the seed, SIGKILLs one victim's whole
process group: the gateway, the streams worker or the GPU consumer (restarted by the supervisor), or, in
a three-broker stack, one Kafka broker (restarted by this harness a few submissions later, as an
operator's service manager would). Victims are drawn so that every kind is hit once per cycle, in a
seeded random order. The next round starts once the victim is back.

After the last round it waits, with a deadline, until every accepted story (HTTP 202) is terminal in
the job view, then counts:

* **accepted**: answered 202 (a 503 or a refused connection while something is down is fine: not
  accepted, nothing promised);
* **lost**: accepted, but no story document in the view by the deadline;
* **stuck**: in the view, but the story or one of its tasks is not terminal by the deadline;
* **twice**: completed twice in the view: a task document with more than one output, a story whose
  ``outputs`` name a task twice or count more completions than tasks, or two different StoryCompleted
  event ids for one story on ``task.events`` (re-sends of one completion share its id);
* **failed**: terminal but not completed (reported; a kill should cost latency, not work).

Run it as a command (``make chaos``)::

    .venv/bin/python -m ops.bench.chaos --rounds 20 --seed 1 --brokers 3

Everything is bounded: submissions per round, a deadline per recovery and for the final drain. It starts
its own services (own topic prefix, database, port, outputs) on the local stack's MongoDB-wire server,
and with ``--brokers 3`` its own three-broker Kafka cluster on free ports under its own run directory,
and stops everything it started. Exit status 1 when anything was lost, stuck or completed twice.

:func:`started_system` (the whole product as supervised processes, with every child event recorded)
is shared with ``tests/e2e/test_chaos.py`` and ``tests/e2e/test_poison.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import KafkaError, TopicPartition
from pymongo import MongoClient
from pymongo.database import Database

from ops.demo.run import create_accounts
from ops.runtime.config import Env
from ops.runtime.kafka import make_consumer
from ops.runtime.supervisor import ChildEvent
from ops.stack import LocalStack, StackSettings
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


# -- chaos ----------------------------------------------------------------------------------------


@dataclass
class Submission:
    round: int
    index: int
    tier: str
    scenes: int
    status: int | None
    story_id: str | None
    detail: str = ""


@dataclass
class Kill:
    round: int
    victim: str
    pid: int | None
    at_submission: int
    back_s: float | None = None
    note: str = ""


@dataclass
class ChaosReport:
    rounds: int
    submissions: list[Submission] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stuck: dict[str, list[str]] = field(default_factory=dict)
    twice: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    completed: int = 0
    unexpected_exits: dict[str, int] = field(default_factory=dict)
    completions_read: bool = True
    wall_s: float = 0.0

    @property
    def accepted(self) -> list[Submission]:
        return [s for s in self.submissions if s.status == 202 and s.story_id]

    def refused(self) -> Counter:
        return Counter(str(s.status or s.detail.split(":")[0]) for s in self.submissions if s.status != 202)

    def summary(self) -> str:
        victims = Counter(k.victim for k in self.kills)
        return (
            f"chaos: {self.rounds} rounds, kills {dict(victims)}; {len(self.submissions)} submissions, "
            f"{len(self.accepted)} accepted (202), refused {dict(self.refused())}; lost {len(self.lost)}, "
            f"completed twice {len(self.twice)}, stuck {len(self.stuck)}, failed {len(self.failed)}, "
            f"completed {self.completed}; unexpected exits {self.unexpected_exits or 0}; "
            f"wall {self.wall_s:.0f}s"
        )

    def details(self, limit: int = 10) -> str:
        lines = []
        for kill in self.kills:
            back = f"back after {kill.back_s:.1f}s" if kill.back_s is not None else "NOT BACK"
            lines.append(
                f"  round {kill.round}: SIGKILL {kill.victim} pid {kill.pid} before submission "
                f"{kill.at_submission}, {back} {kill.note}"
            )
        for label, items in (("lost", {s: "" for s in self.lost}), ("stuck", self.stuck),
                             ("twice", self.twice), ("failed", self.failed)):  # fmt: skip
            for story_id, why in list(items.items())[:limit]:
                sub = next((s for s in self.accepted if s.story_id == story_id), None)
                where = f"round {sub.round} #{sub.index} {sub.tier}" if sub else ""
                lines.append(f"  {label}: {story_id} ({where}) {why}")
        return "\n".join(lines)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stuck or self.twice)


class Chaos:
    """Runs rounds of submissions with one SIGKILL each against a :class:`Harness`."""

    def __init__(
        self,
        h: Harness,
        *,
        seed: int,
        per_round: int = 10,
        pace_s: float = 0.3,
        recover_s: float = 90.0,
        victims: Sequence[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.h = h
        self.progress = progress or (lambda line: None)
        self.rng = random.Random(seed)
        self.per_round = per_round
        self.pace_s = pace_s
        self.recover_s = recover_s
        kinds = list(victims or SERVICES)
        if h.brokers and victims is None:
            kinds.append(BROKER)
        self.kinds = kinds
        self._cycle: list[str] = []
        self._pace = threading.Event()  # never set: its wait() paces submissions without a bare sleep

    def next_victim(self) -> str:
        if not self._cycle:
            self._cycle = self.rng.sample(self.kinds, len(self.kinds))
        return self._cycle.pop()

    def run(self, rounds: int, drain_s: float) -> ChaosReport:
        started = time.monotonic()
        report = ChaosReport(rounds)
        for number in range(1, rounds + 1):
            self.round(number, report)
        self.drain(report, drain_s)
        killed = Counter(k.victim for k in report.kills)
        report.unexpected_exits = {
            name: n - killed.get(name, 0) for name, n in self.h.restarted().items() if n > killed.get(name, 0)
        }
        report.wall_s = time.monotonic() - started
        return report

    def round(self, number: int, report: ChaosReport) -> None:
        victim = self.next_victim()
        kill_at = self.rng.randrange(1, max(2, self.per_round - 1))
        revive_at = min(self.per_round, kill_at + self.rng.randrange(2, 5))  # brokers only
        kill: Kill | None = None
        for index in range(self.per_round):
            if index == kill_at:
                kill = self.kill(number, victim, index)
                report.kills.append(kill)
            if victim == BROKER and index == revive_at and kill is not None:
                self.revive_broker(kill)
            report.submissions.append(self.submit(number, index))
            self._pace.wait(self.pace_s)
        if kill is not None:
            self.recover(kill)
            back = f"back after {kill.back_s:.1f}s" if kill.back_s is not None else "NOT BACK"
            accepted = sum(1 for s in report.submissions if s.round == number and s.status == 202)
            self.progress(
                f"round {number}: SIGKILL {kill.victim} before submission {kill.at_submission}, {back}; "
                f"{accepted}/{self.per_round} accepted"
            )

    def submit(self, number: int, index: int) -> Submission:
        tier = "premium" if (number + index) % 2 == 0 else "free"
        scenes = 1 + self.rng.randrange(2)
        body = {
            "title": f"chaos r{number} #{index}",
            "task_type": "text_to_video",
            "model": "default",
            "params": {**PARAMS, "seed": self.rng.randrange(1000)},
            "scenes": [{"prompt": f"chaos round {number} story {index} scene {s}"} for s in range(scenes)],
        }
        try:
            response = self.h.http.post("/v1/stories", json=body, headers=self.h.auth(tier))
        except httpx.HTTPError as exc:
            return Submission(number, index, tier, scenes, None, None, f"{type(exc).__name__}: {exc}")
        story_id = response.json().get("story_id") if response.status_code == 202 else None
        return Submission(number, index, tier, scenes, response.status_code, story_id, response.text[:200])

    def kill(self, number: int, victim: str, index: int) -> Kill:
        if victim == BROKER:
            node = self.rng.choice(self.h.brokers)
            pid = node.process.pid()
            note = f"(kafka node {node.node_id})"
            victim = f"{BROKER}-{node.node_id}"
        else:
            pid, note = self.h.pid(victim), ""
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                note += " (already gone)"
        else:
            note += " (was not running)"
        return Kill(number, victim, pid, index, note=note, back_s=None)

    def revive_broker(self, kill: Kill) -> None:
        kafka = self.h.system.stack.kafka
        started = time.monotonic()
        try:
            kafka.start(120.0)  # type: ignore[union-attr]  # starts the node that is not running
        except Exception as exc:  # noqa: BLE001 - reported in the round's line
            kill.note += f" (restart failed: {exc})"
            return
        kill.back_s = time.monotonic() - started
        kill.note += " (restarted by the harness)"

    def recover(self, kill: Kill) -> None:
        """Wait until the victim runs again (and the gateway is ready), up to ``recover_s``."""
        if kill.victim.startswith(BROKER):
            if kill.back_s is None:
                self.revive_broker(kill)
            return
        started = time.monotonic()

        def back() -> bool:
            pid = self.h.pid(kill.victim)
            if pid is None or pid == kill.pid:
                return False
            if kill.victim == "gateway":
                try:
                    return self.h.http.get("/readyz", timeout=2.0).status_code == 200
                except httpx.HTTPError:
                    return False
            return True

        if wait_until(back, self.recover_s):
            kill.back_s = time.monotonic() - started

    def drain(self, report: ChaosReport, timeout: float) -> None:
        accepted = [s.story_id for s in report.accepted if s.story_id]

        def finished() -> bool:
            stories, tasks = view_of(self.h.db, accepted)
            return all(not open_in_view(stories.get(s), tasks.get(s, [])) for s in accepted)

        wait_until(finished, timeout, interval=1.0)
        stories, tasks = view_of(self.h.db, accepted)
        completions, report.completions_read = story_completions(
            self.h.bootstrap, self.h.catalog, set(accepted)
        )
        for story_id in accepted:
            story = stories.get(story_id)
            if story is None:
                report.lost.append(story_id)
                continue
            still_open = open_in_view(story, tasks.get(story_id, []))
            if still_open:
                report.stuck[story_id] = still_open
            twice = twice_in_view(story, tasks.get(story_id, []))
            if len(completions.get(story_id, ())) > 1:
                twice.append(f"{len(completions[story_id])} distinct StoryCompleted event ids")
            if twice:
                report.twice[story_id] = twice
            if story.get("status") == "completed":
                report.completed += 1
            elif story.get("status") in TERMINAL_STORY:
                errors = {str(t.get("error")) for t in tasks.get(story_id, []) if t.get("error")}
                report.failed[story_id] = f"{story.get('status')}: {story.get('error')} {sorted(errors)[:2]}"


def drain_budget(stories: int) -> float:
    """Seconds the final drain may take for ``stories`` submissions: session timeouts plus work."""
    return 120.0 + 3.0 * stories


def run_chaos(h: Harness, *, rounds: int, seed: int, per_round: int, pace_s: float) -> ChaosReport:
    chaos = Chaos(
        h, seed=seed, per_round=per_round, pace_s=pace_s, progress=lambda line: print(line, flush=True)
    )
    return chaos.run(rounds, drain_s=drain_budget(rounds * per_round))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--brokers", type=int, choices=(1, 3), default=3)
    parser.add_argument("--per-round", type=int, default=10, help="submissions per round")
    parser.add_argument("--pace", type=float, default=0.3, help="seconds between submissions")
    args = parser.parse_args(argv)

    # The MongoDB-wire server of the local stack (started if needed, never its broker for --brokers 3).
    base = StackSettings.from_env()
    if args.brokers == 3 and base.external_kafka is None:
        base = dataclasses.replace(base, external_kafka="127.0.0.1:1")  # only FerretDB from this stack
    stack = LocalStack(base)
    started = stack.up()
    root = Path(tempfile.mkdtemp(prefix="storee-chaos-"))
    try:
        with started_system(root, stack.mongodb_url, brokers=args.brokers) as h:
            report = run_chaos(
                h, rounds=args.rounds, seed=args.seed, per_round=args.per_round, pace_s=args.pace
            )
            print(report.details())
            evidence = restart_evidence(h, list(report.unexpected_exits), skip_sigkill=True)
            if evidence:
                print("unexpected exits:\n" + evidence)
    finally:
        if started:
            stack.down(only=started)
    print(report.summary())
    print(f"logs in {root / 'logs'}")
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
