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

The system it runs against is :func:`ops.bench.system_under_test.started_system`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ops.bench.system_under_test import (
    BROKER,
    PARAMS,
    SERVICES,
    TERMINAL_STORY,
    Harness,
    open_in_view,
    restart_evidence,
    started_system,
    story_completions,
    twice_in_view,
    view_of,
    wait_until,
)
from ops.stack import LocalStack, StackSettings

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
