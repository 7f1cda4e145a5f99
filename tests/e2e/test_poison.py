"""Poison against the real running system: one bad record never costs another, every accepted story ends.

The broker, the MongoDB-wire server, the gateway, the streams worker and the GPU consumer run as supervised
processes (:func:`ops.bench.system_under_test.started_system`, own topics, database and port). Hypothesis
draws poison records of every kind in ``tests/e2e/poison.py`` (decodable events that break the contract on
each topic, wrong pools and task types, events on the wrong topic, orphans, awkward but legal values,
out-of-order, duplicate and replayed events, and undecodable bytes); they are produced with confluent-kafka
and ``Codec().encode``, interleaved (seeded order) with good stories submitted through the gateway's HTTP API
and good StorySubmitted records produced straight to Kafka. Then, with a deadline, it waits for the system to
settle and asserts, one test each:

* no service restarted (the supervisor saw no child exit);
* every good story is ``completed`` in the job view exactly once: every task completed with one output,
  the story's outputs naming each task once, and one StoryCompleted event id on ``task.events``;
* every bad record is in the DLQ with a reason, matched by its ``storee.dlq.origin.*`` headers;
* every nameable bad task (well-formed ids, some other rule broken, or a pool/task type that cannot
  run) is ``failed`` or ``expired``, and every nameable bad story is ``failed``;
* nothing is stuck: every task and story the records name that must end (or that is in the view at
  all, for records that must not have created it) is terminal.

Sizes come from the environment; the bounded default runs in ``make test``::

    STOREE_KEEP_STACK=1 .venv/bin/python -m pytest tests/e2e/test_poison.py -q          # 40 records, 6 good
    POISON_RECORDS=2000 POISON_GOOD_STORIES=60 .venv/bin/python -m pytest tests/e2e/test_poison.py -q
    make poison                                           # the same long run, through ops/bench/poison.py

``POISON_TIMEOUT`` overrides the settle deadline (default 60 s + 0.5 s per record + 3 s per good
story), ``POISON_SEED`` the interleaving order, ``POISON_TASK_DEADLINE_S`` the poison tasks' start
deadline (45 s: what only expiry can end must end within the run), ``POISON_QUIET`` how long nothing
may change, once those deadlines passed, before it stops waiting (30 s), and ``POISON_REPORT`` names a
file for every finding as JSON. A summary line (records tried, dead-lettered, lost, good stories
completed) is printed to the terminal and repeated in every failure.

The long run (``make poison``, ``ops/bench/poison.py``) reuses this test: 2000 records, 60 good
stories, 300 s task deadlines (a long backlog must not expire the legitimate orphans), a 60 s quiet
period. On 2 cores it took 5.5 to 7 minutes; the bounded run 10 s when nothing is owed, about 90 s
when something never settles (it waits out the deadlines).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Producer

from ops.bench.system_under_test import (
    PARAMS,
    Harness,
    log_lines,
    restart_evidence,
    started_system,
    story_completions,
    wait_until,
)
from schemas.codec import Codec
from schemas.events import StorySubmitted
from schemas.records import Tier
from tests.e2e.chaos import show
from tests.e2e.poison import generate
from tests.e2e.poison_values import FUTURE_MS, Forge, Poison, describe, story_submitted
from tests.e2e.poison_verdict import DeadLetters, Verdict, batches_by_id, judge

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = int(os.environ.get("POISON_RECORDS", "40"))
GOOD = int(os.environ.get("POISON_GOOD_STORIES", "6"))
SEED = int(os.environ.get("POISON_SEED", "0"))
TIMEOUT = float(os.environ.get("POISON_TIMEOUT", "0")) or 60 + 0.5 * RECORDS + 3 * GOOD
QUIET = float(os.environ.get("POISON_QUIET", "30"))
SERVICES = ("gateway", "streams", "gpu-consumer")


@dataclass
class Outcome:
    h: Harness
    poisons: list[Poison]
    good: list[str]
    verdict: Verdict
    completions: dict[str, set[str]]
    completions_read: bool
    refused: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    cobatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        v = self.verdict
        tried = sum(len(p.records) for p in self.poisons)
        restarts = self.h.restarted()
        return (
            f"poison: {tried} records tried ({len(self.poisons)} poisons; {self.skipped} skipped, encode "
            f"refused), {v.owed} owed a dead letter: {v.dead_lettered} dead-lettered, {len(v.lost)} lost, "
            f"{len(v.no_reason)} without a reason; nameable bad tasks/stories failed "
            f"{v.named_failed}/{v.named}; "
            f"{len(v.stuck)} stuck; good stories completed {v.good_completed}/{len(self.good)} "
            f"({len(v.good_twice)} twice); restarts {restarts or 0}; {len(v.left_open)} orphan tasks left "
            f"open (not asserted); {self.seconds:.0f}s"
        )


@pytest.fixture(scope="module")
def poison_system(local_stack, tmp_path_factory) -> Iterator[Harness]:
    with started_system(tmp_path_factory.mktemp("poison"), local_stack.mongodb_url) as h:
        yield h


def _good_stories(count: int) -> list[StorySubmitted]:
    """The good stories produced straight to Kafka (about a third of them; the rest go over HTTP)."""
    return [
        story_submitted(f"good-k{i}", tier=Tier.FREE if i % 2 else Tier.PREMIUM,
                        prompts=[f"outside story {i} scene {s}" for s in range(1 + i % 2)], seed=i)
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def outcome(poison_system: Harness, request) -> Outcome:
    h = poison_system
    started = time.monotonic()
    codec = Codec()
    by_kafka = _good_stories(max(1, GOOD // 3))
    over_http = GOOD - len(by_kafka)
    forge = Forge(codec, [(story, codec.encode(story)) for story in by_kafka])
    poisons = generate(forge, RECORDS)

    plan: list[tuple[str, object]] = [("http", i) for i in range(over_http)]
    plan += [("kafka", story) for story in by_kafka] + [("poison", p) for p in poisons]
    random.Random(SEED).shuffle(plan)

    producer = Producer({"bootstrap.servers": h.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5})  # fmt: skip
    good: list[str] = []
    refused: list[str] = []
    undelivered: list[str] = []

    def delivered(poison: Poison):  # type: ignore[no-untyped-def]
        def report(error, message) -> None:  # type: ignore[no-untyped-def]
            if error is None:
                poison.coords.append((message.topic(), message.partition(), message.offset()))
            else:
                undelivered.append(f"{poison.kind} {poison.detail}: {error}")

        return report

    for kind, item in plan:
        if kind == "http":
            i = int(item)  # type: ignore[call-overload]
            tier = "premium" if i % 2 == 0 else "free"
            body = {
                "title": f"good http {i}", "task_type": "text_to_video", "model": "default",
                "params": {**PARAMS, "seed": i},
                "scenes": [{"prompt": f"good http story {i} scene {s}"} for s in range(1 + i % 2)],
            }  # fmt: skip
            response = h.http.post("/v1/stories", json=body, headers=h.auth(tier))
            if response.status_code == 202:
                good.append(response.json()["story_id"])
            else:
                refused.append(f"http story {i}: {response.status_code} {response.text[:200]}")
        elif kind == "kafka":
            story = item
            assert isinstance(story, StorySubmitted)
            producer.produce(
                h.catalog.stories_submitted, key=story.story_id.encode(), value=codec.encode(story)
            )
            good.append(story.story_id)
        else:
            poison = item
            assert isinstance(poison, Poison)
            for record in poison.records:
                producer.produce(
                    h.catalog.prefix + record.topic, key=record.key, value=record.value,
                    headers=[("storee.poison.kind", poison.kind.encode())], on_delivery=delivered(poison),
                )  # fmt: skip
        producer.poll(0)
    assert producer.flush(30) == 0, "the poison producer could not deliver everything within 30s"

    # Settled: nothing owed is pending, or nothing changed for QUIET seconds once every poison task's
    # start deadline has passed (what only expiry can end has had its chance), or TIMEOUT.
    earliest_quiet = time.monotonic() + FUTURE_MS / 1000 + 15
    letters = DeadLetters(h.bootstrap, h.catalog.dlq, codec)
    try:
        verdicts: list[Verdict] = []
        last: dict[str, Any] = {"state": None, "since": time.monotonic()}

        def settled() -> bool:
            verdict = judge(h.db, poisons, good, letters)
            verdicts[:] = [verdict]
            state = (
                verdict.lost,
                verdict.not_failed,
                verdict.stuck,
                verdict.good_open,
                verdict.dead_lettered,
            )
            now = time.monotonic()
            if state != last["state"]:
                last.update(state=state, since=now)
            return not verdict.pending or (now > earliest_quiet and now - last["since"] > QUIET)

        wait_until(settled, TIMEOUT, interval=1.0)
        verdict = verdicts[-1]
    finally:
        letters.close()
    completions, read = story_completions(h.bootstrap, h.catalog, set(good))
    result = Outcome(
        h, poisons, good, verdict, completions, read, refused, undelivered,
        skipped=sum(forge.skipped.values()), seconds=time.monotonic() - started,
    )  # fmt: skip
    result.cobatched = cobatched(h, poisons, good)
    report = os.environ.get("POISON_REPORT")
    if report:  # every finding in full, for runs too long to read in an assertion message
        with open(report, "w", encoding="utf-8") as out:
            json.dump({"summary": result.summary(), "restarts": h.restarted(), "cobatched": result.cobatched,
                       **dataclasses.asdict(verdict)}, out, indent=1)  # fmt: skip
    show(request, result.summary())
    return result


def cobatched(h: Harness, poisons: list[Poison], good: list[str]) -> list[str]:
    """For each good task that did not complete: the batch it was in, and the poisons batched with it."""
    docs = list(h.db["tasks"].find({"story_id": {"$in": good}, "status": {"$ne": "completed"}}))
    wanted = {d["batch_id"]: d["_id"] for d in docs if d.get("batch_id")}
    if not docs:
        return []
    topics = [h.catalog.batches("default", tier) for tier in ("premium", "free")]
    batches = batches_by_id(h.bootstrap, topics, set(wanted))
    by_story = {s: p for p in poisons for s in _stories_of(p)}
    out = []
    for d in docs:
        tasks = batches.get(d.get("batch_id") or "", [])
        others = [t for t in tasks if t != d["_id"]]
        named = [f"{t} <- {describe(by_story[t.rpartition(':')[0]])}" for t in others
                 if t.rpartition(":")[0] in by_story]  # fmt: skip
        out.append(
            f"good task {d['_id']} ended {d.get('status')!r} error={d.get('error')} in batch "
            f"{d.get('batch_id')} with {others or 'no other task'}" + "".join(f"\n    {n}" for n in named)
        )
    return out


def _stories_of(p: Poison) -> set[str]:
    ids = {p.story_fails, p.story_ends, *p.stories, *p.stories_end_if_present}
    ids |= {t.rpartition(":")[0] for t in (*p.tasks_fail, *p.tasks_end, *p.end_if_present, *p.left_open)}
    return {i for i in ids if i}


def _evidence(o: Outcome, lines: list[str], limit: int = 12) -> str:
    """The findings, each with the service log lines that mention the ids it names."""
    out = []
    for line in lines[:limit]:
        out.append("  - " + line)
        words = [w.strip("',:()[]") for w in line.split()]
        ids = [w for w in words if w.startswith(("p0", "good-")) or (len(w) == 32 and w.isalnum())][:2]
        # Where it was produced: the streams' dead-letter lines name "topic=T partition=P offset=O".
        coords = re.findall(r"(\S+)\[(\d+)\]@(\d+)", line)[:1]
        needles = [*ids, *(f"topic={t} partition={p} offset={o_} " for t, p, o_ in coords)]
        for name in SERVICES:
            for hit in log_lines(o.h.log_file(name), *needles, limit=2) if needles else []:
                out.append(f"      {name}.log: {hit[:300]}")
    if len(lines) > limit:
        out.append(f"  ... and {len(lines) - limit} more")
    return "\n".join(out)


def test_no_service_restarted(outcome: Outcome):
    h = outcome.h
    pids = {name: h.pid(name) for name in SERVICES}
    assert not h.restarted() and pids == h.first_pids, (
        f"{outcome.summary()}\npids first {h.first_pids}, now {pids}; services restarted:\n"
        f"{restart_evidence(h)}"
    )


def test_every_good_story_completes_exactly_once(outcome: Outcome):
    v = outcome.verdict
    assert not outcome.refused, f"the gateway refused good stories: {outcome.refused}"
    assert outcome.completions_read, "task.events could not be read to its end"
    twice = [f"good story {s}: {len(outcome.completions.get(s, ()))} distinct StoryCompleted event ids"
             for s in outcome.good if len(outcome.completions.get(s, ())) != 1]  # fmt: skip
    problems = v.good_open + v.good_not_completed + v.good_twice + twice
    batched = "\n".join(outcome.cobatched)
    assert not problems, f"{outcome.summary()}\n{_evidence(outcome, problems)}\n{batched}"


def test_every_bad_record_is_dead_lettered_with_a_reason(outcome: Outcome):
    v = outcome.verdict
    assert not outcome.undelivered, f"poison records Kafka refused: {outcome.undelivered[:5]}"
    problems = v.lost + v.no_reason
    assert not problems, f"{outcome.summary()}\n{_evidence(outcome, problems, limit=40)}"


def test_every_nameable_bad_task_is_failed_or_expired(outcome: Outcome):
    v = outcome.verdict
    assert not v.not_failed, f"{outcome.summary()}\n{_evidence(outcome, v.not_failed, limit=40)}"


def test_nothing_is_stuck(outcome: Outcome):
    v = outcome.verdict
    assert not v.stuck, f"{outcome.summary()}\n{_evidence(outcome, v.stuck, limit=40)}"
