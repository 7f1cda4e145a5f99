"""Poison strategies for the work topics: StorySubmitted, TaskRequested and BatchReady records.

One ``@st.composite`` per kind, each drawing one :class:`~tests.e2e.poison_values.Poison` from a
:class:`~tests.e2e.poison_values.Forge` (None when encode refused the event, counted in
``forge.skipped``), with the tables only that kind draws from: records that break one rule of the
contract (``story_bad``, ``task_bad``, ``batch_bad``), keep it but can never run
(``story_unrunnable``, ``task_unrunnable``, ``batch_unrunnable``), or are legitimate but odd
(``story_odd``, ``task_orphan``, ``batch_orphan``). ``poison.py`` collects them by kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from schemas.events import BatchReady
from schemas.ids import batch_id, new_event_id, now_ms
from schemas.records import Scene, TaskType, Tier
from tests.e2e.poison_values import (
    BAD_IDS,
    BAD_TASK_IDS,
    FUTURE_MS,
    PARAMS,
    PROMPT,
    SEED,
    STORIES,
    STORY_BAD,
    TASK_BAD,
    TASKS,
    TIER,
    Forge,
    Poison,
    Produced,
    batch_ready,
    batch_task,
    batches_topic,
    encode_or_skip,
    params_with,
    story_submitted,
    task_requested,
)


@st.composite
def story_bad(draw: Any, forge: Forge) -> Poison | None:
    """A StorySubmitted that breaks one rule of the contract."""
    sid = forge.sid()
    prompts = draw(st.lists(PROMPT, min_size=1, max_size=2))
    base = story_submitted(sid, tier=draw(TIER), prompts=prompts, seed=draw(SEED))
    if draw(st.booleans()):
        label, make = draw(st.sampled_from(BAD_IDS))
        event, named = replace(base, story_id=make(sid)), False
        label = f"story_id {label}"
    else:
        label, mutate = draw(st.sampled_from(STORY_BAD))
        # A story is shown only to its account: with no valid owner, its DLQ record is all there is.
        event, named = mutate(base), not label.startswith("account_id")
    value = encode_or_skip(forge, event, "story.bad")
    if value is None:
        return None
    return Poison(
        "story.bad", f"StorySubmitted {label}", [Produced(STORIES, event.story_id.encode(), value)],
        dead_letter="origin", story_fails=sid if named else None, event=event,
    )  # fmt: skip


STORY_UNRUNNABLE: list[tuple[str, dict[str, Any], bool]] = [
    # (label, changes, whether a dead letter is owed: an unknown pool or task type is refused work)
    ("model='nosuchpool' (a pool nobody serves)", {"model": "nosuchpool"}, True),
    ("task_type=image_to_video on the text_to_video pool", {"task_type": TaskType.IMAGE_TO_VIDEO}, True),
    ("task_type=text_to_audio on the text_to_video pool", {"task_type": TaskType.TEXT_TO_AUDIO}, True),
    ("no scenes and no story_text", {"scenes": ()}, False),
    ("no scenes, story_text of blanks", {"scenes": (), "story_text": " \n\n \t "}, False),
    ("a scene prompt of blanks", {"scenes": (Scene(index=0, prompt="   "),)}, False),
    ("65 scenes (MAX_SCENES is 64)", {"scenes": tuple(Scene(index=i, prompt="s") for i in range(65))}, False),
]


@st.composite
def story_unrunnable(draw: Any, forge: Forge) -> Poison | None:
    """A StorySubmitted that keeps the contract but can never run: it must end failed."""
    sid = forge.sid()
    label, changes, owed = draw(st.sampled_from(STORY_UNRUNNABLE))
    prompts = draw(st.lists(PROMPT, min_size=1, max_size=2))
    event = replace(story_submitted(sid, tier=draw(TIER), prompts=prompts, seed=None), **changes)
    value = encode_or_skip(forge, event, "story.unrunnable")
    if value is None:
        return None
    scenes = len(event.scenes) if owed else 0
    return Poison(
        "story.unrunnable", f"StorySubmitted {label}", [Produced(STORIES, sid.encode(), value)],
        dead_letter="derived" if owed else None, stories=(sid,), story_fails=sid,
        tasks_fail=tuple(f"{sid}:{i}" for i in range(scenes)), event=event,
    )  # fmt: skip


@st.composite
def story_odd(draw: Any, forge: Forge) -> Poison | None:
    """A StorySubmitted at the edges of the contract that must still end (raw text, longest id, ...)."""
    sid = forge.sid()
    choice = draw(
        st.sampled_from(["story_text", "128-character id", "no deadline, unicode title", "late deadline"])
    )
    prompts = draw(st.lists(PROMPT, min_size=1, max_size=2))
    event = story_submitted(sid, tier=draw(TIER), prompts=prompts, seed=draw(SEED))
    if choice == "story_text":
        event = replace(event, scenes=(), story_text=". ".join(p.capitalize() for p in prompts) + ".")
    elif choice == "128-character id":
        sid = (sid + "." + "x" * 128)[:128]
        event = replace(event, story_id=sid)
    elif choice == "no deadline, unicode title":
        event = replace(event, title="Ünïcødé ☃ ²³ ../../etc", deadline=None)
    else:
        event = replace(event, deadline=now_ms() + FUTURE_MS, sequence=2**40)
    value = encode_or_skip(forge, event, "story.odd")
    if value is None:
        return None
    return Poison(
        "story.odd", f"StorySubmitted with {choice}", [Produced(STORIES, sid.encode(), value)],
        story_ends=sid, event=event,
    )  # fmt: skip


@st.composite
def task_bad(draw: Any, forge: Forge) -> Poison | None:
    """A TaskRequested that breaks one rule: ids (names nothing) or another field (names its task)."""
    sid = forge.sid()
    base = task_requested(sid, tier=draw(TIER), prompt=draw(PROMPT), seed=draw(SEED))
    which = draw(st.sampled_from(["field", "task_id", "story_id"]))
    named: tuple[str, ...] = ()
    if which == "story_id":
        label, make = draw(st.sampled_from(BAD_IDS))
        bad = make(sid)
        event, label = replace(base, story_id=bad, task_id=f"{bad}:0"), f"story_id {label}"
    elif which == "task_id":
        label, make_task, index, count = draw(st.sampled_from(BAD_TASK_IDS))
        event = replace(base, task_id=make_task(sid), scene_index=index, task_count=count)
    else:
        label, mutate = draw(st.sampled_from(TASK_BAD))
        event = mutate(base)
        named = (event.task_id,)
    value = encode_or_skip(forge, event, "task.bad")
    if value is None:
        return None
    return Poison(
        "task.bad", f"TaskRequested {label}", [Produced(TASKS, event.story_id.encode(), value)],
        dead_letter="origin", tasks_fail=named, event=event,
    )  # fmt: skip


TASK_UNRUNNABLE: list[tuple[str, dict[str, Any], str]] = [
    ("model='nosuchpool'", {"model": "nosuchpool"}, "origin"),
    ("model='Default' (pools are case-sensitive)", {"model": "Default"}, "origin"),
    ("task_type=image_to_video on the text_to_video pool", {"task_type": TaskType.IMAGE_TO_VIDEO}, "derived"),
    ("task_type=text_to_audio on the text_to_video pool", {"task_type": TaskType.TEXT_TO_AUDIO}, "derived"),
]


@st.composite
def task_unrunnable(draw: Any, forge: Forge) -> Poison | None:
    """A contract-valid TaskRequested for a pool or task type this deployment cannot run."""
    sid = forge.sid()
    label, changes, owed = draw(st.sampled_from(TASK_UNRUNNABLE))
    event = replace(task_requested(sid, tier=draw(TIER), prompt=draw(PROMPT)), **changes)
    value = encode_or_skip(forge, event, "task.unrunnable")
    if value is None:
        return None
    return Poison(
        "task.unrunnable", f"TaskRequested {label}", [Produced(TASKS, sid.encode(), value)],
        dead_letter=owed, stories=(sid,), tasks_fail=(event.task_id,), event=event,
    )  # fmt: skip


AWKWARD_PARAMS: list[tuple[str, dict[str, Any]]] = [
    ("width=0, height=0", {"width": 0, "height": 0}),
    ("num_frames=0", {"num_frames": 0}),
    ("num_frames=1", {"num_frames": 1}),
    ("width=17, height=9 (not multiples of 8)", {"width": 17, "height": 9}),
    ("num_inference_steps=0", {"num_inference_steps": 0}),
    ("num_inference_steps=1", {"num_inference_steps": 1}),
    ("fps=0", {"fps": 0}),
    ("fps=240", {"fps": 240}),
    ("guidance_scale=0.0", {"guidance_scale": 0.0}),
    ("guidance_scale=100.0", {"guidance_scale": 100.0}),
    ("seed=2**63-1", {"seed": 2**63 - 1}),
    ("seed=0", {"seed": 0}),
    ("negative_prompt of 20000 characters", {"negative_prompt": "n" * 20_000}),
    ("audio_length_s=3600.0 on video", {"audio_length_s": 3600.0}),
]


@st.composite
def task_orphan(draw: Any, forge: Forge) -> Poison | None:
    """Legitimate TaskRequested records of stories nobody submitted: each task must still end.

    Plain, awkward parameters, a past or no deadline, the largest sequence, attempt and task count the
    contract allows, an exact duplicate, and an out-of-order pair (the later record with the smaller
    sequence and the earlier event time).
    """
    sid = forge.sid()
    choice = draw(st.sampled_from([
        "awkward params", "out-of-order pair", "duplicate record", "past deadline", "plain",
        "no deadline", "sequence=2**53", "attempt=100", "scene 1023 of 1024", "prompt of 20000 characters",
    ]))  # fmt: skip
    event = task_requested(sid, tier=draw(TIER), prompt=draw(PROMPT), seed=draw(SEED))
    events = [event]
    label = choice
    if choice == "awkward params":
        what, changes = draw(st.sampled_from(AWKWARD_PARAMS))
        events = [replace(event, params=replace(event.params, **changes))]
        label = f"params {what}"
    elif choice == "out-of-order pair":
        later = replace(event, event_id=new_event_id(), event_time=event.event_time - 60_000, sequence=0)
        events = [replace(event, sequence=2**53 - 10), later]
    elif choice == "duplicate record":
        events = [event, event]
    elif choice == "past deadline":
        events = [replace(event, deadline=draw(st.sampled_from([0, 1, now_ms() - 1000])))]
    elif choice == "no deadline":
        events = [replace(event, deadline=None)]
    elif choice == "sequence=2**53":
        events = [replace(event, sequence=2**53)]
    elif choice == "attempt=100":
        events = [replace(event, attempt=100)]
    elif choice == "scene 1023 of 1024":
        events = [replace(event, task_id=f"{sid}:1023", scene_index=1023, task_count=1024)]
    elif choice == "prompt of 20000 characters":
        events = [replace(event, prompt="p" * 20_000)]
    values = [encode_or_skip(forge, e, "task.orphan") for e in events]
    if any(v is None for v in values):
        return None
    return Poison(
        "task.orphan", f"TaskRequested of an unknown story, {label}",
        [Produced(TASKS, sid.encode(), v) for v in values], tasks_end=(events[0].task_id,), event=events[0],
    )  # fmt: skip


BATCH_BAD: list[tuple[str, Callable[[BatchReady], BatchReady], bool]] = [
    # (label, mutation, whether its tasks are still named)
    ("batch_id of other tasks", lambda b: replace(b, batch_id=batch_id(["x:0"])), True),
    ("batch_id='b-xyz'", lambda b: replace(b, batch_id="b-xyz"), True),
    ("no tasks", lambda b: replace(b, tasks=()), False),
    (
        "a task twice",
        lambda b: replace(
            b, tasks=(*b.tasks, b.tasks[0]), batch_id=batch_id([t.task_id for t in (*b.tasks, b.tasks[0])])
        ),
        True,
    ),  # noqa: E501
    ("tasks[0].sequence=2**63-1", lambda b: _task0(b, sequence=2**63 - 1), True),
    ("tasks[0].attempt=-1", lambda b: _task0(b, attempt=-1), True),
    ("tasks[0].prompt=''", lambda b: _task0(b, prompt=""), True),
    ("tasks[0].params.width=2**31-1", lambda b: _task0(b, params=replace(PARAMS, width=2**31 - 1)), True),
    ("tasks[0].deadline=-1", lambda b: _task0(b, deadline=-1), True),
    ("params.guidance_scale=nan", params_with(guidance_scale=math.nan), True),
    ("params.num_frames=-1", params_with(num_frames=-1), True),
    ("pool='a.b' (not a pool name)", lambda b: replace(b, pool="a.b"), True),
    ("sequence=-1", lambda b: replace(b, sequence=-1), True),
    ("deadline=-1", lambda b: replace(b, deadline=-1), True),
    (
        "tasks[0].story_id='../x'",
        lambda b: _task0(b, story_id="../" + b.tasks[0].story_id, task_id="../" + b.tasks[0].task_id),
        False,
    ),
    ("tasks[0].task_id ':²'", lambda b: _task0(b, task_id=b.tasks[0].story_id + ":²"), False),
]


def _task0(batch: BatchReady, **changes: Any) -> BatchReady:
    first = replace(batch.tasks[0], **changes)
    tasks = (first, *batch.tasks[1:])
    ids = [t.task_id for t in tasks]
    # Keep the batch id right unless the mutation is about ids, so only one rule breaks.
    return replace(batch, tasks=tasks, batch_id=batch_id(ids))


@st.composite
def batch_bad(draw: Any, forge: Forge) -> Poison | None:
    """A BatchReady on a batch topic that breaks one rule of the contract."""
    sid = forge.sid()
    tier = draw(TIER)
    size = draw(st.integers(1, 2))
    base = batch_ready([batch_task(sid, i, prompt=draw(PROMPT)) for i in range(size)], tier=tier)
    label, mutate, named = draw(st.sampled_from(BATCH_BAD))
    event = mutate(base)
    value = encode_or_skip(forge, event, "batch.bad")
    if value is None:
        return None
    names = tuple(sorted({t.task_id for t in event.tasks})) if named else ()
    return Poison(
        "batch.bad", f"BatchReady {label}", [Produced(batches_topic(tier), b"poison-batch", value)],
        dead_letter="origin", tasks_fail=names, event=event,
    )  # fmt: skip


BATCH_UNRUNNABLE: list[tuple[str, dict[str, Any]]] = [
    ("pool='nosuchpool' on the default pool's topic", {"pool": "nosuchpool"}),
    ("task_type=image_to_video on the text_to_video pool", {"task_type": TaskType.IMAGE_TO_VIDEO}),
    ("task_type=text_to_audio on the text_to_video pool", {"task_type": TaskType.TEXT_TO_AUDIO}),
]


@st.composite
def batch_unrunnable(draw: Any, forge: Forge) -> Poison | None:
    """A contract-valid BatchReady its consumer cannot run: dead-lettered, its tasks failed."""
    sid = forge.sid()
    tier = draw(TIER)
    label, changes = draw(st.sampled_from(BATCH_UNRUNNABLE))
    event = replace(batch_ready([batch_task(sid, 0, prompt=draw(PROMPT))], tier=tier), **changes)
    value = encode_or_skip(forge, event, "batch.unrunnable")
    if value is None:
        return None
    return Poison(
        "batch.unrunnable", f"BatchReady {label}", [Produced(batches_topic(tier), b"poison-batch", value)],
        dead_letter="origin", tasks_fail=(f"{sid}:0",), event=event,
    )  # fmt: skip


@st.composite
def batch_orphan(draw: Any, forge: Forge) -> Poison | None:
    """A valid BatchReady of tasks nobody requested (or past their deadline, or on the other tier's
    topic, or delivered twice): every task must end."""
    sid = forge.sid()
    tier = draw(TIER)
    size = draw(st.integers(1, 2))
    choice = draw(st.sampled_from(["plain", "past deadline", "other tier's topic", "delivered twice"]))
    tasks = [batch_task(sid, i, prompt=draw(PROMPT), params=replace(PARAMS, seed=i)) for i in range(size)]
    event = batch_ready(tasks, tier=tier)
    topic = batches_topic(tier)
    copies = 1
    if choice == "past deadline":
        event = replace(event, deadline=now_ms() - 1000)
    elif choice == "other tier's topic":
        topic = batches_topic(Tier.PREMIUM if tier is Tier.FREE else Tier.FREE)
    elif choice == "delivered twice":
        copies = 2
    value = encode_or_skip(forge, event, "batch.orphan")
    if value is None:
        return None
    return Poison(
        "batch.orphan", f"BatchReady of unknown tasks, {choice}",
        [Produced(topic, b"poison-batch", value)] * copies, tasks_end=tuple(t.task_id for t in tasks),
        event=event,
    )  # fmt: skip
