"""Judging a poison run: the DLQ read back, the job view, the verdict; and batches read back.

:class:`DeadLetters` reads the DLQ topic from the beginning, indexed by the origin its
``storee.dlq.origin.*`` headers name and by the stories its records name; :func:`judge` compares it
and the job view (the ``tasks`` and ``stories`` collections) with what every
:class:`~tests.e2e.poison_values.Poison` and good story is owed, into a :class:`Verdict`;
:func:`batches_by_id` reads the task ids of given BatchReady records back from the batch topics.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import Codec
from schemas.events import BatchReady, Event
from schemas.exceptions import CodecError
from schemas.ids import new_event_id
from tests.e2e.poison_values import Poison, describe

# -- judging: the DLQ as read back, and what the job view shows -----------------------------------

TERMINAL_TASK = frozenset({"completed", "failed", "expired", "cancelled"})
TERMINAL_STORY = frozenset({"completed", "failed", "cancelled"})
FAILED_TASK = frozenset({"failed", "expired"})


def contract_accepts(event: Event | None) -> bool | None:
    """Whether the contract check (``schemas.contract.check``) lets ``event`` through (None: no event)."""
    if event is None:
        return None
    from schemas.contract import check  # the others' oracle, used only to word a finding

    try:
        check(event)
    except CodecError:
        return False
    except Exception:  # noqa: BLE001 - a crash in the check is itself worth reporting as "not refused"
        return True
    return True


@dataclass(frozen=True)
class Letter:
    """One DLQ record as read back: where it came from, why, and which stories it names."""

    origin: tuple[str, int, int] | None
    error_class: str
    error_message: str
    service: str
    names: frozenset[str]
    problem: str = ""  # malformed storee.dlq.* headers


class DeadLetters:
    """Reads the DLQ topic from the beginning, incrementally, indexed by origin and by story named."""

    def __init__(self, bootstrap: str, topic: str, codec: Codec) -> None:
        from confluent_kafka import TopicPartition

        from ops.runtime.kafka import make_consumer

        self.codec = codec
        self.consumer = make_consumer(bootstrap, f"poison-dlq-{new_event_id()}")
        meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, -2) for p in meta.partitions])  # -2: beginning
        self.by_origin: dict[tuple[str, int, int], list[Letter]] = {}
        self.by_story: dict[str, list[Letter]] = {}
        self.letters: list[Letter] = []

    def poll(self, rounds: int = 20) -> None:
        from schemas.dlq import DeadLetter, DeadLetterError

        for _ in range(rounds):
            messages = self.consumer.consume(1000, timeout=0.2)
            if not messages:
                return
            for message in messages:
                if message.error():
                    continue
                names = self._names(message.key(), message.value())
                try:
                    dl = DeadLetter.from_headers(message.headers())  # type: ignore[arg-type]
                except DeadLetterError as exc:
                    letter = Letter(None, "", "", "", names, problem=str(exc))
                else:
                    origin = (dl.origin_topic, dl.origin_partition, dl.origin_offset)
                    letter = Letter(origin, dl.error_class, dl.error_message, dl.service, names)
                    self.by_origin.setdefault(origin, []).append(letter)
                for name in names:
                    self.by_story.setdefault(name, []).append(letter)
                self.letters.append(letter)

    def _names(self, key: bytes | None, value: bytes | None) -> frozenset[str]:
        names: set[str] = set()
        if key:
            names.add(key.decode("utf-8", errors="replace"))
        try:
            event = self.codec.decode(value) if value else None
        except Exception:  # noqa: BLE001 - a dead letter is often undecodable; it names nothing then
            event = None
        if isinstance(event, BatchReady):
            names.update(t.story_id for t in event.tasks)
        elif event is not None and hasattr(event, "story_id"):
            names.add(event.story_id)
        return frozenset(names)

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Verdict:
    """What the run showed, by assertion; ``pending`` lists what a longer wait could still change."""

    lost: list[str] = field(default_factory=list)
    no_reason: list[str] = field(default_factory=list)
    not_failed: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    good_open: list[str] = field(default_factory=list)
    good_not_completed: list[str] = field(default_factory=list)
    good_twice: list[str] = field(default_factory=list)
    left_open: list[str] = field(default_factory=list)
    dead_lettered: int = 0
    owed: int = 0
    named_failed: int = 0
    named: int = 0
    good_completed: int = 0

    @property
    def pending(self) -> bool:
        return bool(self.lost or self.not_failed or self.stuck or self.good_open)


def _docs(db: Any, collection: str, ids: Sequence[str], by: str = "_id") -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    ids = sorted(set(ids))
    for i in range(0, len(ids), 200):
        for doc in db[collection].find({by: {"$in": ids[i : i + 200]}}):
            found.setdefault(doc[by], []).append(doc)
    return found


def _status(doc: dict | None) -> str:
    if doc is None:
        return "absent"
    error = doc.get("error")
    return f"{doc.get('status')!r}" + (f" error={error}" if error else "")


def _task_states(docs: Sequence[dict]) -> str:
    return "; ".join(
        f"{t['_id']} {_status(t)} batch_id={t.get('batch_id')} consumer={t.get('consumer_id')}" for t in docs
    )


def judge(db: Any, poisons: Sequence[Poison], good: Sequence[str], letters: DeadLetters) -> Verdict:
    """Compare the DLQ and the job view with what every poison and good story is owed."""
    letters.poll()
    v = Verdict()
    task_ids = {t for p in poisons for t in (*p.tasks_fail, *p.tasks_end, *p.end_if_present, *p.left_open)}
    story_ids = {s for p in poisons for s in (p.story_fails, p.story_ends, *p.stories_end_if_present) if s}
    # Every story a poison names (not the orphan task events' stories, which nothing can close).
    named_stories = story_ids | {
        t.rpartition(":")[0] for p in poisons for t in (*p.tasks_fail, *p.tasks_end, *p.end_if_present)
    }
    tasks = {k: docs[0] for k, docs in _docs(db, "tasks", list(task_ids)).items()}
    stories = {k: docs[0] for k, docs in _docs(db, "stories", [*story_ids, *good]).items()}
    story_tasks = _docs(db, "tasks", [*named_stories, *good], by="story_id")
    reported: set[str] = set()

    for p in poisons:
        if p.dead_letter == "origin":
            for coord in p.coords:
                v.owed += 1
                found = letters.by_origin.get(coord, [])
                if not found:
                    accepts = contract_accepts(p.event)
                    checked = accepts and p.kind.endswith(".bad")
                    hint = " (schemas.contract.check accepts it)" if checked else ""
                    v.lost.append(f"{describe(p)}: no DLQ record with origin {coord}{hint}")
                elif not any(letter.error_class and letter.error_message for letter in found):
                    v.no_reason.append(f"{describe(p)}: DLQ record(s) without a reason: {found}")
                else:
                    v.dead_lettered += 1
        elif p.dead_letter == "derived":
            v.owed += 1
            named = any(letters.by_story.get(s) for s in p.stories)
            if named or any(letters.by_origin.get(c) for c in p.coords):
                v.dead_lettered += 1
            else:
                v.lost.append(f"{describe(p)}: no DLQ record names story {p.stories}")
        if p.story_fails:
            v.named += 1
            doc = stories.get(p.story_fails)
            if doc is None or doc.get("status") != "failed":
                v.not_failed.append(f"{describe(p)}: story {p.story_fails} is {_status(doc)}, not 'failed'")
            else:
                v.named_failed += 1
        for task_id in p.tasks_fail:
            v.named += 1
            doc = tasks.get(task_id)
            if doc is None or doc.get("status") not in FAILED_TASK:
                v.not_failed.append(f"{describe(p)}: task {task_id} is {_status(doc)}, not failed/expired")
            else:
                v.named_failed += 1
        for task_id in p.tasks_end:
            doc = tasks.get(task_id)
            if doc is None or doc.get("status") not in TERMINAL_TASK:
                v.stuck.append(f"{describe(p)}: task {task_id} is {_status(doc)}")
                reported.add(task_id)
        for task_id in p.end_if_present:
            doc = tasks.get(task_id)
            if doc is not None and doc.get("status") not in TERMINAL_TASK:
                v.stuck.append(f"{describe(p)}: task {task_id} is {_status(doc)} in the view")
                reported.add(task_id)
        named_here = {p.story_fails, p.story_ends, *p.stories_end_if_present} | {
            t.rpartition(":")[0] for t in (*p.tasks_fail, *p.tasks_end, *p.end_if_present)
        }
        for sid in sorted(s for s in named_here if s):
            for doc in story_tasks.get(sid, []):
                if doc["_id"] not in reported and doc.get("status") not in TERMINAL_TASK:
                    v.stuck.append(f"{describe(p)}: task {doc['_id']} of story {sid} is {_status(doc)}")
                    reported.add(doc["_id"])
        sids = [*p.stories_end_if_present, *([p.story_ends] if p.story_ends else [])]
        for sid in sids:
            doc = stories.get(sid)
            if doc is None and sid != p.story_ends:
                continue
            open_tasks = [t["_id"] for t in story_tasks.get(sid, []) if t.get("status") not in TERMINAL_TASK]
            if doc is None or doc.get("status") not in TERMINAL_STORY:  # open tasks: reported above
                v.stuck.append(f"{describe(p)}: story {sid} is {_status(doc)}, open tasks {open_tasks}")
        for task_id in p.left_open:
            doc = tasks.get(task_id)
            if doc is not None and doc.get("status") not in TERMINAL_TASK:
                v.left_open.append(f"{describe(p)}: task {task_id} {_status(doc)}")

    for sid in good:
        doc = stories.get(sid)
        docs = story_tasks.get(sid, [])
        statuses = {t["_id"]: t.get("status") for t in docs}
        if (
            doc is None
            or doc.get("status") not in TERMINAL_STORY
            or any(s not in TERMINAL_TASK for s in statuses.values())
        ):
            v.good_open.append(f"good story {sid} is {_status(doc)}, tasks {_task_states(docs)}")
            continue
        count = doc.get("task_count") or 0
        outputs = Counter(o.get("task_id") for o in doc.get("outputs") or [])
        problems = [f"task {t['_id']} has {len(t.get('outputs') or [])} outputs" for t in docs
                    if len(t.get("outputs") or []) > 1]  # fmt: skip
        problems += [f"story outputs name {t} {n} times" for t, n in outputs.items() if n > 1]
        if (doc.get("counts") or {}).get("completed", 0) > count:
            problems.append(f"counts {doc.get('counts')} exceed task_count {count}")
        if problems:
            v.good_twice.append(f"good story {sid}: " + "; ".join(problems))
        if (
            doc.get("status") != "completed"
            or len(docs) != count
            or len(outputs) != count
            or any(s != "completed" for s in statuses.values())
        ):
            v.good_not_completed.append(f"good story {sid} is {_status(doc)}, tasks {_task_states(docs)}")
        else:
            v.good_completed += 1
    return v


def batches_by_id(bootstrap: str, topics: Sequence[str], wanted: set[str], timeout: float = 60.0) -> dict:
    """The task ids of the BatchReady records with the ``wanted`` batch ids on ``topics``."""
    from confluent_kafka import KafkaError, TopicPartition

    from ops.runtime.kafka import make_consumer

    codec = Codec()
    consumer = make_consumer(bootstrap, f"poison-batches-{new_event_id()}", **{"enable.partition.eof": True})
    parts = [
        TopicPartition(topic, p, -2)
        for topic in topics
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ]
    consumer.assign(parts)
    found: dict[str, list[str]] = {}
    ended: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    try:
        while wanted and len(ended) < len(parts) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        ended.add((message.topic() or "", message.partition() or 0))
                    continue
                try:
                    event = codec.decode(message.value() or b"")
                except CodecError:
                    continue
                if isinstance(event, BatchReady) and event.batch_id in wanted:
                    found[event.batch_id] = [t.task_id for t in event.tasks]
    finally:
        consumer.close()
    return found
