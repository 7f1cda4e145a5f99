"""Poison strategies for what is not new work: task events, wrong topics, undecodable bytes, replays.

One ``@st.composite`` per kind, each drawing one :class:`~tests.e2e.poison_values.Poison` from a
:class:`~tests.e2e.poison_values.Forge` (None when encode refused the event): task events on
``task.events`` that break the contract (``event_bad``) or name stories nobody submitted
(``event_orphan``), valid events on a topic that does not carry their type (``wrong_topic``), bytes
that are no decodable event (``undecodable``), and replays of a good story's events (``replay``).
``poison.py`` collects them by kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from schemas.events import (
    Event,
    StoryCancelled,
    StoryCompleted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskRequested,
    TaskStarted,
)
from schemas.exceptions import CodecError
from schemas.ids import new_event_id, now_ms
from schemas.records import OutputArtifact, Tier
from schemas.registry import HEADER_SIZE
from tests.e2e.poison_values import (
    EVENTS,
    FREE_BATCHES,
    PREMIUM_BATCHES,
    PROMPT,
    STORIES,
    TASKS,
    WORK_TOPICS,
    Forge,
    Poison,
    Produced,
    batch_ready,
    batch_task,
    encode_or_skip,
    output,
    story_submitted,
    task_requested,
)


def _task_event(kind: str, sid: str, task_id: str, **over: Any) -> Event:
    common: dict[str, Any] = {"story_id": sid, "task_id": task_id, "sequence": 4}
    if kind == "TaskStarted":
        values = {**common, "batch_id": "b-" + "1" * 24, "consumer_id": "poison-consumer", "attempt": 0}
        return TaskStarted(**{**values, **over})
    if kind == "TaskProgress":
        values = {**common, "batch_id": "b-" + "1" * 24, "consumer_id": "poison-consumer", "step": 1,
                  "total_steps": 2}  # fmt: skip
        return TaskProgress(**{**values, **over})
    if kind == "TaskCompleted":
        values = {**common, "batch_id": "b-" + "1" * 24, "consumer_id": "poison-consumer",
                  "outputs": (output(),), "run_ms": 5, "gpu_seconds": 0.5}  # fmt: skip
        return TaskCompleted(**{**values, **over})
    if kind == "TaskFailed":
        values = {**common, "consumer_id": "poison-consumer", "error_class": "PoisonError",
                  "message": "poisoned", "attempt": 0, "retriable": False}  # fmt: skip
        return TaskFailed(**{**values, **over})
    if kind == "TaskExpired":
        return TaskExpired(**{**common, "deadline": now_ms() - 1000, **over})
    raise ValueError(kind)


EVENT_BAD: list[tuple[str, str, dict[str, Any]]] = [
    # (event class, label, field changes); ids stay well-formed unless the label says otherwise
    ("TaskStarted", "consumer_id=''", {"consumer_id": ""}),
    ("TaskCompleted", "outputs=()", {"outputs": ()}),
    ("TaskProgress", "step=3 of total_steps=2", {"step": 3}),
    ("TaskStarted", "consumer_id with a space", {"consumer_id": "a consumer"}),
    ("TaskStarted", "attempt=-1", {"attempt": -1}),
    ("TaskStarted", "batch_id=''", {"batch_id": ""}),
    ("TaskProgress", "total_steps=0", {"total_steps": 0, "step": 0}),
    ("TaskProgress", "step=-1", {"step": -1}),
    ("TaskCompleted", "outputs[0].uri=''", {"outputs": (OutputArtifact(uri="", media_type="video/mp4"),)}),
    (
        "TaskCompleted",
        "outputs[0].media_type='mp4'",
        {"outputs": (OutputArtifact(uri="file:///x.mp4", media_type="mp4"),)},
    ),
    ("TaskCompleted", "gpu_seconds=nan", {"gpu_seconds": math.nan}),
    ("TaskCompleted", "gpu_seconds=-1", {"gpu_seconds": -1.0}),
    ("TaskCompleted", "run_ms=-1", {"run_ms": -1}),
    ("TaskCompleted", "seed=-1", {"seed": -1}),
    ("TaskCompleted", "65 outputs", {"outputs": tuple(output(f"file:///x{i}.mp4") for i in range(65))}),
    ("TaskFailed", "error_class=''", {"error_class": ""}),
    ("TaskFailed", "message of 65537 characters", {"message": "m" * 65_537}),
    ("TaskFailed", "attempt=101", {"attempt": 101}),
    ("TaskExpired", "deadline=-1", {"deadline": -1}),
    ("TaskStarted", "sequence=2**63-1", {"sequence": 2**63 - 1}),
    ("TaskCompleted", "event_time=-1", {"event_time": -1}),
]

EVENT_BAD_IDS: list[tuple[str, str, Callable[[str], tuple[str, str]]]] = [
    ("TaskStarted", "task_id ':²'", lambda s: (s, f"{s}:²")),
    ("TaskCompleted", "story_id 'a/b'", lambda s: (f"{s}/b", f"{s}/b:0")),
    ("TaskFailed", "task_id of another story", lambda s: (s, f"other{s}:0")),
    ("TaskProgress", "story_id ''", lambda s: ("", ":0")),
    ("TaskExpired", "task_id ':01'", lambda s: (s, f"{s}:01")),
    ("TaskCompleted", "story_id '../x'", lambda s: (f"../{s}", f"../{s}:0")),
]


@st.composite
def event_bad(draw: Any, forge: Forge) -> Poison | None:
    """A task event on task.events that breaks one rule of the contract."""
    sid = forge.sid()
    named: tuple[str, ...] = ()
    if draw(st.integers(0, 3)) == 0:
        kind, label, make = draw(st.sampled_from(EVENT_BAD_IDS))
        story_id, task_id = make(sid)
        event = _task_event(kind, story_id, task_id)
    else:
        kind, label, changes = draw(st.sampled_from(EVENT_BAD))
        changes = {"sequence": draw(st.integers(0, 2**53 - 10)), **changes}
        event = _task_event(kind, sid, f"{sid}:0", **changes)
        named = (f"{sid}:0",)
    value = encode_or_skip(forge, event, "event.bad")
    if value is None:
        return None
    return Poison(
        "event.bad", f"{kind} {label}", [Produced(EVENTS, event.story_id.encode(), value)],  # type: ignore[attr-defined]
        dead_letter="origin", end_if_present=named, event=event,
    )  # fmt: skip


@st.composite
def event_orphan(draw: Any, forge: Forge) -> Poison | None:
    """Legitimate task events of stories nobody submitted: terminal ones must leave the task ended."""
    sid = forge.sid()
    kind = draw(st.sampled_from(["TaskCompleted", "TaskFailed", "TaskExpired", "TaskStarted", "TaskProgress",
                                 "StoryCancelled", "StoryCompleted"]))  # fmt: skip
    task_id = f"{sid}:0"
    if kind == "StoryCancelled":
        event: Event = StoryCancelled(story_id=sid, account_id="acct-poison", reason="poison", sequence=9)
    elif kind == "StoryCompleted":
        event = StoryCompleted(story_id=sid, account_id="acct-poison", tasks_completed=1, tasks_failed=0,
                               tasks_expired=0, gpu_seconds=0.1, sequence=9)  # fmt: skip
    elif kind == "TaskFailed":
        event = _task_event(kind, sid, task_id, retriable=draw(st.booleans()))
    else:
        event = _task_event(kind, sid, task_id, sequence=draw(st.integers(0, 2**53 - 10)))
    value = encode_or_skip(forge, event, "event.orphan")
    if value is None:
        return None
    open_kind = kind in ("TaskStarted", "TaskProgress")
    terminal = kind in ("TaskCompleted", "TaskFailed", "TaskExpired")
    return Poison(
        "event.orphan", f"{kind} of an unknown story", [Produced(EVENTS, sid.encode(), value)],
        tasks_end=(task_id,) if terminal else (), left_open=(task_id,) if open_kind else (),
        stories_end_if_present=(sid,) if kind == "StoryCancelled" else (), event=event,
    )  # fmt: skip


WRONG_TOPIC: list[tuple[str, str]] = [
    (EVENTS, "StorySubmitted"),
    (EVENTS, "BatchReady"),
    (STORIES, "TaskRequested"),
    (TASKS, "StorySubmitted"),
    (FREE_BATCHES, "TaskRequested"),
    (EVENTS, "TaskRequested"),
    (STORIES, "TaskCompleted"),
    (STORIES, "BatchReady"),
    (TASKS, "TaskStarted"),
    (TASKS, "BatchReady"),
    (FREE_BATCHES, "StorySubmitted"),
    (FREE_BATCHES, "TaskCompleted"),
]


@st.composite
def wrong_topic(draw: Any, forge: Forge) -> Poison | None:
    """A valid event on a topic that does not carry its type."""
    sid = forge.sid()
    topic, kind = draw(st.sampled_from(WRONG_TOPIC))
    prompt = draw(PROMPT)
    events: dict[str, Callable[[], Event]] = {
        "StorySubmitted": lambda: story_submitted(sid, tier=Tier.FREE, prompts=[prompt], seed=None),
        "TaskRequested": lambda: task_requested(sid, prompt=prompt),
        "BatchReady": lambda: batch_ready([batch_task(sid, 0, prompt=prompt)]),
        "TaskStarted": lambda: _task_event("TaskStarted", sid, f"{sid}:0"),
        "TaskCompleted": lambda: _task_event("TaskCompleted", sid, f"{sid}:0"),
    }
    event = events[kind]()
    value = encode_or_skip(forge, event, "wrong_topic")
    if value is None:
        return None
    return Poison(
        "wrong_topic", f"{kind} on {topic}", [Produced(topic, sid.encode(), value)], dead_letter="origin",
        end_if_present=(f"{sid}:0",), stories_end_if_present=(sid,), event=event,
    )  # fmt: skip


UNDECODABLE = [
    "tombstone (no value)",
    "empty value",
    "random bytes",
    "truncated event",
    "trailing byte",
    "unknown fingerprint",
    "wrong marker",
    "JSON",
    "known header, garbage body",
    "int beyond 32 bits",
]


@st.composite
def undecodable(draw: Any, forge: Forge) -> Poison | None:
    """Bytes that are not a decodable event, on any topic a consumer reads."""
    sid = forge.sid()
    topic = draw(st.sampled_from([*WORK_TOPICS, PREMIUM_BATCHES]))
    shape = draw(st.sampled_from(UNDECODABLE))
    good = forge.encode(task_requested(sid))
    value: bytes | None
    if shape == "tombstone (no value)":
        value = None
    elif shape == "empty value":
        value = b""
    elif shape == "random bytes":
        value = draw(st.binary(min_size=1, max_size=64).filter(lambda b: b[:2] != b"\xc3\x01"))
    elif shape == "truncated event":
        value = good[: draw(st.integers(1, len(good) - 1))]
    elif shape == "trailing byte":
        value = good + draw(st.binary(min_size=1, max_size=4))
    elif shape == "unknown fingerprint":
        value = b"\xc3\x01" + draw(st.binary(min_size=8, max_size=8)) + good[HEADER_SIZE:]
    elif shape == "wrong marker":
        value = b"\xc3\x02" + good[2:]
    elif shape == "JSON":
        value = b'{"story_id": "%s", "task_id": "%s:0"}' % (sid.encode(), sid.encode())
    elif shape == "known header, garbage body":
        value = good[:HEADER_SIZE] + draw(st.binary(min_size=1, max_size=32))
    else:
        record = task_requested(sid).to_record()
        record["params"]["width"] = 2**40  # fastavro writes it; it is not valid Avro for an int
        try:
            value = forge.codec.encode_record(TaskRequested.schema_name, record)
        except CodecError:
            forge.skipped["undecodable"] += 1
            return None
    # Nothing to check beyond "dead-lettered": a tombstone or garbage names nothing.
    return Poison("undecodable", f"{shape} on {topic}", [Produced(topic, sid.encode(), value)],
                  dead_letter="origin")  # fmt: skip


@st.composite
def replay(draw: Any, forge: Forge) -> Poison | None:
    """Replays of a good story's events (at-least-once delivery): the good story still completes once."""
    if not forge.good:
        forge.skipped["replay"] += 1
        return None
    story, raw = draw(st.sampled_from(forge.good))
    sid = story.story_id
    index = draw(st.integers(0, len(story.scenes) - 1))
    choice = draw(st.sampled_from(["exact duplicate", "re-sent StorySubmitted", "TaskRequested again",
                                   "TaskStarted", "TaskProgress"]))  # fmt: skip
    task_id = f"{sid}:{index}"
    if choice == "exact duplicate":
        value = raw
    else:
        if choice == "re-sent StorySubmitted":
            event: Event = replace(story, event_id=new_event_id(), event_time=now_ms())
        elif choice == "TaskRequested again":
            event = TaskRequested(
                story_id=sid, task_id=task_id, account_id=story.account_id, tier=story.tier,
                task_type=story.task_type, model=story.model, scene_index=index,
                task_count=len(story.scenes), prompt=story.scenes[index].prompt, params=story.params,
                sequence=story.sequence + 1, deadline=story.submitted_at + 300_000,
            )  # fmt: skip
        else:
            event = _task_event(choice, sid, task_id, sequence=2)
        encoded = encode_or_skip(forge, event, "replay")
        if encoded is None:
            return None
        value = encoded
    topic = (
        STORIES
        if choice in ("exact duplicate", "re-sent StorySubmitted")
        else (TASKS if choice == "TaskRequested again" else EVENTS)
    )
    return Poison("replay", f"{choice} of good story {sid} (task {task_id})",
                  [Produced(topic, sid.encode(), value)])  # fmt: skip
