"""Poison records for the running system: Hypothesis strategies, and the bookkeeping that judges them.

Each strategy draws one :class:`Poison`: one or more Kafka records (decodable events built from the
schemas' classes and encoded with :class:`schemas.codec.Codec`, or a few undecodable byte strings)
together with what the system owes for it:

* ``dead_letter="origin"``: every record of it must be in the DLQ with a reason, found by the
  ``storee.dlq.origin.*`` headers (topic, partition, offset it was produced at);
  ``"derived"``: some DLQ record must name its story (a record derived from it, e.g. the TaskRequested a
  story with an unknown pool was split into, or the BatchReady its tasks were batched into);
* ``story_fails``: a story that must end ``failed`` in the job view (a StorySubmitted with a well-formed
  ``story_id`` and ``account_id`` whose record broke another rule, or that can never run: a story is
  shown only to its account, so one without a valid owner ends as its DLQ record alone);
  ``story_ends``: must end at all;
* ``tasks_fail``: tasks that must be ``failed`` or ``expired`` in the view (a well-formed
  ``story_id``/``task_id`` on a work topic whose record broke another rule, or whose pool or task type
  cannot run); ``tasks_end``: tasks of legitimate but odd records (orphans, awkward parameters,
  out-of-order and duplicate copies) that must reach any terminal status;
* ``end_if_present`` / ``stories_end_if_present``: what a bad record names on ``task.events`` or on the
  wrong topic need not be in the view, but if it is there it must not stay open;
* ``left_open``: tasks a legitimate orphan TaskStarted/TaskProgress opens in the view; nothing can
  close a task whose request never existed, so these are counted, not asserted.

Kinds are drawn by separate Hypothesis runs (:func:`generate`), ``derandomize=True`` and generation
only (no shrinking, no database), so a run is repeatable: the same seed-free settings give the same
records (ids are numbered in draw order; only times differ). A batch of N is split evenly across the
kinds, each kind collected with ``max_examples`` = its share: Hypothesis's first example of any test is
the simplest one, so one ``@given`` run with ``max_examples=1`` over a list strategy would give a list of
the simplest records only; collecting per kind keeps every kind in even a small batch and lets the
later examples vary.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.events import (
    BatchReady,
    Event,
    StoryCancelled,
    StoryCompleted,
    StorySubmitted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskRequested,
    TaskStarted,
)
from schemas.exceptions import CodecError
from schemas.ids import batch_id, new_event_id, now_ms
from schemas.records import BatchTask, GenerationParams, MediaRef, OutputArtifact, Scene, TaskType, Tier
from schemas.registry import HEADER_SIZE

POOL = "default"
PARAMS = GenerationParams(width=64, height=64, num_frames=5, fps=8, num_inference_steps=2, guidance_scale=5.0)
# The start deadline of the poison tasks (TaskRequested, BatchReady and their tasks): short, so a task the
# system can only end by expiring it ends within the run; settling waits past it.
FUTURE_MS = int(float(os.environ.get("POISON_TASK_DEADLINE_S", "45")) * 1000)
STORIES = "stories.submitted"
TASKS = "tasks.requested"
EVENTS = "task.events"
FREE_BATCHES = f"batches.{POOL}.free"
PREMIUM_BATCHES = f"batches.{POOL}.premium"
WORK_TOPICS = (STORIES, TASKS, FREE_BATCHES, EVENTS)


@dataclass(frozen=True)
class Produced:
    """One record to produce: the topic's name without prefix, key and value (None: a tombstone)."""

    topic: str
    key: bytes | None
    value: bytes | None


@dataclass
class Poison:
    kind: str
    detail: str
    records: list[Produced]
    dead_letter: str | None = None
    stories: tuple[str, ...] = ()
    story_fails: str | None = None
    story_ends: str | None = None
    tasks_fail: tuple[str, ...] = ()
    tasks_end: tuple[str, ...] = ()
    end_if_present: tuple[str, ...] = ()
    stories_end_if_present: tuple[str, ...] = ()
    left_open: tuple[str, ...] = ()
    event: Event | None = None
    coords: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def bad(self) -> bool:
        return self.dead_letter is not None

    def where(self) -> str:
        return ", ".join(f"{t}[{p}]@{o}" for t, p, o in self.coords) or "not produced"


class Forge:
    """Numbers ids (unique within a run), encodes, and knows the good stories replays copy."""

    def __init__(self, codec: Codec, good: Sequence[tuple[StorySubmitted, bytes]] = ()) -> None:
        self.codec = codec
        self.good = list(good)
        self.count = 0
        self.skipped: Counter[str] = Counter()

    def sid(self) -> str:
        self.count += 1
        return f"p{self.count:05d}"

    def encode(self, event: Event) -> bytes:
        return self.codec.encode(event)


# -- valid building blocks ------------------------------------------------------------------------

_PROMPT = st.from_regex(r"[a-z][a-z ]{2,24}[a-z]", fullmatch=True)
_TIER = st.sampled_from([Tier.FREE, Tier.PREMIUM])
_SEED = st.one_of(st.none(), st.integers(0, 10_000))


def story_submitted(
    sid: str, *, tier: Tier, prompts: Sequence[str], seed: int | None, **over: Any
) -> StorySubmitted:
    return StorySubmitted(
        story_id=sid,
        account_id="acct-poison",
        tier=tier,
        task_type=TaskType.TEXT_TO_VIDEO,
        model=POOL,
        submitted_at=now_ms(),
        title=f"poison {sid}",
        params=replace(PARAMS, seed=seed),
        scenes=tuple(Scene(index=i, prompt=p) for i, p in enumerate(prompts)),
        **over,
    )


def task_requested(
    sid: str, *, index: int = 0, count: int = 1, tier: Tier = Tier.FREE, prompt: str = "a poison task",
    seed: int | None = None, **over: Any,
) -> TaskRequested:  # fmt: skip
    values: dict[str, Any] = {
        "story_id": sid, "task_id": f"{sid}:{index}", "account_id": "acct-poison", "tier": tier,
        "task_type": TaskType.TEXT_TO_VIDEO, "model": POOL, "scene_index": index, "task_count": count,
        "prompt": prompt, "params": replace(PARAMS, seed=seed), "sequence": 1,
        "deadline": now_ms() + FUTURE_MS,
    }  # fmt: skip
    values.update(over)
    return TaskRequested(**values)


def batch_task(sid: str, index: int = 0, *, prompt: str = "a poison batch task", **over: Any) -> BatchTask:
    values: dict[str, Any] = {
        "task_id": f"{sid}:{index}", "story_id": sid, "account_id": "acct-poison", "sequence": 1,
        "scene_index": index, "prompt": prompt, "params": PARAMS, "deadline": now_ms() + FUTURE_MS,
    }  # fmt: skip
    values.update(over)
    return BatchTask(**values)


def batch_ready(tasks: Sequence[BatchTask], *, tier: Tier = Tier.FREE, **over: Any) -> BatchReady:
    values: dict[str, Any] = {
        "batch_id": batch_id([t.task_id for t in tasks]) if tasks else "b-" + "0" * 24,
        "pool": POOL, "tier": tier, "task_type": TaskType.TEXT_TO_VIDEO, "model": POOL,
        "params": PARAMS, "tasks": tuple(tasks), "deadline": now_ms() + FUTURE_MS,
    }  # fmt: skip
    values.update(over)
    return BatchReady(**values)


def batches_topic(tier: Tier) -> str:
    return FREE_BATCHES if tier is Tier.FREE else PREMIUM_BATCHES


def output(uri: str = "file:///nonexistent/poison.mp4") -> OutputArtifact:
    return OutputArtifact(uri=uri, media_type="video/mp4", size_bytes=1, sha256="0" * 64)


# -- the values that break the contract -----------------------------------------------------------

IdMaker = Callable[[str], str]
# Bad ids, each made from a fresh valid one so no two records share an id (except the empty one).
BAD_IDS: list[tuple[str, IdMaker]] = [
    ("'../x'", lambda s: f"../{s}"),
    ("''", lambda s: ""),
    ("'a/b'", lambda s: f"{s}/b"),
    ("unicode digits 's²'", lambda s: f"{s}²"),
    ("129 characters", lambda s: (s + "x" * 129)[:129]),
    ("leading '-'", lambda s: f"-{s}"),
    ("leading '.'", lambda s: f".{s}"),
    ("a space", lambda s: f"{s} x"),
    ("non-ASCII 'é'", lambda s: f"{s}é"),
    ("a NUL", lambda s: f"{s}\x00"),
    ("a ':'", lambda s: f"{s}:0"),
]

Mutation = tuple[str, Callable[[Any], Any]]


def _params(**changes: Any) -> Callable[[Any], Any]:
    return lambda e: replace(e, params=replace(e.params, **changes))


PARAM_BAD: list[Mutation] = [
    ("params.width=2**31-1", _params(width=2**31 - 1)),
    ("params.guidance_scale=nan", _params(guidance_scale=math.nan)),
    ("params.num_frames=2**31-1", _params(num_frames=2**31 - 1)),
    ("params.width=-1", _params(width=-1)),
    ("params.height=2**31-1", _params(height=2**31 - 1)),
    ("params.height=-64", _params(height=-64)),
    ("params.num_frames=-1", _params(num_frames=-1)),
    ("params.fps=-1", _params(fps=-1)),
    ("params.fps=2**31-1", _params(fps=2**31 - 1)),
    ("params.num_inference_steps=-1", _params(num_inference_steps=-1)),
    ("params.num_inference_steps=10001", _params(num_inference_steps=10_001)),
    ("params.guidance_scale=inf", _params(guidance_scale=math.inf)),
    ("params.guidance_scale=-inf", _params(guidance_scale=-math.inf)),
    ("params.guidance_scale=-0.5", _params(guidance_scale=-0.5)),
    ("params.guidance_scale=100.5", _params(guidance_scale=100.5)),
    ("params.seed=-1", _params(seed=-1)),
    ("params.seed=-(2**63)", _params(seed=-(2**63))),
    ("params.audio_length_s=nan", _params(audio_length_s=math.nan)),
    ("params.negative_prompt of 20001 characters", _params(negative_prompt="n" * 20_001)),
]

ENVELOPE_BAD: list[Mutation] = [
    ("sequence=2**63-1", lambda e: replace(e, sequence=2**63 - 1)),
    ("sequence=-1", lambda e: replace(e, sequence=-1)),
    ("sequence=2**53+1", lambda e: replace(e, sequence=2**53 + 1)),
    ("event_time=-1", lambda e: replace(e, event_time=-1)),
    ("event_time=2**63-1", lambda e: replace(e, event_time=2**63 - 1)),
    ("event_id=''", lambda e: replace(e, event_id="")),
    ("event_id with a space", lambda e: replace(e, event_id="an event")),
]

BAD_MEDIA: list[tuple[str, MediaRef]] = [
    ("input.uri=''", MediaRef(uri="", media_type="image/png")),
    ("input.media_type='png'", MediaRef(uri="file:///poison.png", media_type="png")),
    ("input.sha256='zz'", MediaRef(uri="file:///poison.png", media_type="image/png", sha256="zz")),
]

STORY_BAD: list[Mutation] = [
    *PARAM_BAD[:3],
    *ENVELOPE_BAD[:1],
    ("account_id='../acct'", lambda e: replace(e, account_id="../acct")),
    ("account_id=''", lambda e: replace(e, account_id="")),
    ("model='a b'", lambda e: replace(e, model="a b")),
    ("model=''", lambda e: replace(e, model="")),
    ("title of 1001 characters", lambda e: replace(e, title="t" * 1001)),
    ("scenes[0].index=-1", lambda e: replace(e, scenes=(replace(e.scenes[0], index=-1), *e.scenes[1:]))),
    ("scenes[0].index=1024", lambda e: replace(e, scenes=(replace(e.scenes[0], index=1024), *e.scenes[1:]))),
    ("a scene index twice", lambda e: replace(e, scenes=(*e.scenes, replace(e.scenes[0], prompt="again")))),
    (
        "scenes[0].prompt of 20001 characters",
        lambda e: replace(e, scenes=(replace(e.scenes[0], prompt="p" * 20_001), *e.scenes[1:])),
    ),
    ("1025 scenes", lambda e: replace(e, scenes=tuple(Scene(index=i, prompt="s") for i in range(1025)))),
    ("submitted_at=-1", lambda e: replace(e, submitted_at=-1)),
    ("submitted_at=2**63-1", lambda e: replace(e, submitted_at=2**63 - 1)),
    ("deadline=-1", lambda e: replace(e, deadline=-1)),
    ("callback_url of 2049 characters", lambda e: replace(e, callback_url="http://x/" + "u" * 2040)),
    ("idempotency_key of 256 characters", lambda e: replace(e, idempotency_key="k" * 256)),
    *[(label, lambda e, m=media: replace(e, input=m)) for label, media in BAD_MEDIA],
    *PARAM_BAD[3:],
    *ENVELOPE_BAD[1:],
]

TASK_BAD: list[Mutation] = [
    ("sequence=2**63-1", lambda e: replace(e, sequence=2**63 - 1)),
    ("params.width=2**31-1", _params(width=2**31 - 1)),
    (
        "scene_index=5 of task_count=3 (task_id ':5')",
        lambda e: replace(e, task_id=f"{e.story_id}:5", scene_index=5, task_count=3),
    ),
    ("task_count=0", lambda e: replace(e, task_count=0)),
    ("task_count=1025", lambda e: replace(e, task_count=1025)),
    ("attempt=-1", lambda e: replace(e, attempt=-1)),
    ("attempt=101", lambda e: replace(e, attempt=101)),
    ("prompt=''", lambda e: replace(e, prompt="")),
    ("prompt='   '", lambda e: replace(e, prompt="   ")),
    ("prompt of 20001 characters", lambda e: replace(e, prompt="p" * 20_001)),
    ("account_id=''", lambda e: replace(e, account_id="")),
    ("account_id='a/b'", lambda e: replace(e, account_id="a/b")),
    ("model='a b'", lambda e: replace(e, model="a b")),
    ("deadline=-1", lambda e: replace(e, deadline=-1)),
    *[(label, lambda e, m=media: replace(e, input=m)) for label, media in BAD_MEDIA],
    *PARAM_BAD[1:],
    *ENVELOPE_BAD[1:],
]

# (label, task_id from a valid story id, scene_index, task_count): none of these names a task.
BAD_TASK_IDS: list[tuple[str, Callable[[str], str], int, int]] = [
    ("task_id ':²' (a unicode digit)", lambda s: f"{s}:²", 2, 3),
    ("task_id ':٣' (an Arabic-Indic digit)", lambda s: f"{s}:٣", 3, 4),
    ("task_id ':-1'", lambda s: f"{s}:-1", 0, 1),
    ("task_id ':01'", lambda s: f"{s}:01", 1, 2),
    ("task_id ':1' for scene_index 0", lambda s: f"{s}:1", 0, 2),
    ("task_id without ':'", lambda s: s, 0, 1),
    ("task_id of another story", lambda s: f"other{s}:0", 0, 1),
    ("task_id with a 30-digit index", lambda s: f"{s}:{'9' * 30}", 0, 1),
    ("task_id ':1024' of task_count 1025", lambda s: f"{s}:1024", 1024, 1025),
    ("task_id ':0:0'", lambda s: f"{s}:0:0", 0, 1),
]


# -- strategies, one per kind -----------------------------------------------------------------------


def _encode(forge: Forge, event: Event, kind: str) -> bytes | None:
    try:
        return forge.encode(event)
    except CodecError:
        forge.skipped[kind] += 1
        return None


@st.composite
def story_bad(draw: Any, forge: Forge) -> Poison | None:
    """A StorySubmitted that breaks one rule of the contract."""
    sid = forge.sid()
    prompts = draw(st.lists(_PROMPT, min_size=1, max_size=2))
    base = story_submitted(sid, tier=draw(_TIER), prompts=prompts, seed=draw(_SEED))
    if draw(st.booleans()):
        label, make = draw(st.sampled_from(BAD_IDS))
        event, named = replace(base, story_id=make(sid)), False
        label = f"story_id {label}"
    else:
        label, mutate = draw(st.sampled_from(STORY_BAD))
        # A story is shown only to its account: with no valid owner, its DLQ record is all there is.
        event, named = mutate(base), not label.startswith("account_id")
    value = _encode(forge, event, "story.bad")
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
    prompts = draw(st.lists(_PROMPT, min_size=1, max_size=2))
    event = replace(story_submitted(sid, tier=draw(_TIER), prompts=prompts, seed=None), **changes)
    value = _encode(forge, event, "story.unrunnable")
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
    prompts = draw(st.lists(_PROMPT, min_size=1, max_size=2))
    event = story_submitted(sid, tier=draw(_TIER), prompts=prompts, seed=draw(_SEED))
    if choice == "story_text":
        event = replace(event, scenes=(), story_text=". ".join(p.capitalize() for p in prompts) + ".")
    elif choice == "128-character id":
        sid = (sid + "." + "x" * 128)[:128]
        event = replace(event, story_id=sid)
    elif choice == "no deadline, unicode title":
        event = replace(event, title="Ünïcødé ☃ ²³ ../../etc", deadline=None)
    else:
        event = replace(event, deadline=now_ms() + FUTURE_MS, sequence=2**40)
    value = _encode(forge, event, "story.odd")
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
    base = task_requested(sid, tier=draw(_TIER), prompt=draw(_PROMPT), seed=draw(_SEED))
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
    value = _encode(forge, event, "task.bad")
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
    event = replace(task_requested(sid, tier=draw(_TIER), prompt=draw(_PROMPT)), **changes)
    value = _encode(forge, event, "task.unrunnable")
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
    event = task_requested(sid, tier=draw(_TIER), prompt=draw(_PROMPT), seed=draw(_SEED))
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
    values = [_encode(forge, e, "task.orphan") for e in events]
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
    ("params.guidance_scale=nan", _params(guidance_scale=math.nan), True),
    ("params.num_frames=-1", _params(num_frames=-1), True),
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
    tier = draw(_TIER)
    size = draw(st.integers(1, 2))
    base = batch_ready([batch_task(sid, i, prompt=draw(_PROMPT)) for i in range(size)], tier=tier)
    label, mutate, named = draw(st.sampled_from(BATCH_BAD))
    event = mutate(base)
    value = _encode(forge, event, "batch.bad")
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
    tier = draw(_TIER)
    label, changes = draw(st.sampled_from(BATCH_UNRUNNABLE))
    event = replace(batch_ready([batch_task(sid, 0, prompt=draw(_PROMPT))], tier=tier), **changes)
    value = _encode(forge, event, "batch.unrunnable")
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
    tier = draw(_TIER)
    size = draw(st.integers(1, 2))
    choice = draw(st.sampled_from(["plain", "past deadline", "other tier's topic", "delivered twice"]))
    tasks = [batch_task(sid, i, prompt=draw(_PROMPT), params=replace(PARAMS, seed=i)) for i in range(size)]
    event = batch_ready(tasks, tier=tier)
    topic = batches_topic(tier)
    copies = 1
    if choice == "past deadline":
        event = replace(event, deadline=now_ms() - 1000)
    elif choice == "other tier's topic":
        topic = batches_topic(Tier.PREMIUM if tier is Tier.FREE else Tier.FREE)
    elif choice == "delivered twice":
        copies = 2
    value = _encode(forge, event, "batch.orphan")
    if value is None:
        return None
    return Poison(
        "batch.orphan", f"BatchReady of unknown tasks, {choice}",
        [Produced(topic, b"poison-batch", value)] * copies, tasks_end=tuple(t.task_id for t in tasks),
        event=event,
    )  # fmt: skip


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
    value = _encode(forge, event, "event.bad")
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
    value = _encode(forge, event, "event.orphan")
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
    prompt = draw(_PROMPT)
    events: dict[str, Callable[[], Event]] = {
        "StorySubmitted": lambda: story_submitted(sid, tier=Tier.FREE, prompts=[prompt], seed=None),
        "TaskRequested": lambda: task_requested(sid, prompt=prompt),
        "BatchReady": lambda: batch_ready([batch_task(sid, 0, prompt=prompt)]),
        "TaskStarted": lambda: _task_event("TaskStarted", sid, f"{sid}:0"),
        "TaskCompleted": lambda: _task_event("TaskCompleted", sid, f"{sid}:0"),
    }
    event = events[kind]()
    value = _encode(forge, event, "wrong_topic")
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
        encoded = _encode(forge, event, "replay")
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


KINDS: dict[str, Callable[[Forge], st.SearchStrategy[Poison | None]]] = {
    "story.bad": story_bad,
    "task.bad": task_bad,
    "batch.bad": batch_bad,
    "event.bad": event_bad,
    "undecodable": undecodable,
    "wrong_topic": wrong_topic,
    "task.unrunnable": task_unrunnable,
    "story.unrunnable": story_unrunnable,
    "batch.unrunnable": batch_unrunnable,
    "task.orphan": task_orphan,
    "batch.orphan": batch_orphan,
    "event.orphan": event_orphan,
    "replay": replay,
    "story.odd": story_odd,
}


def shares(total: int, kinds: Sequence[str] = tuple(KINDS)) -> dict[str, int]:
    """``total`` records split evenly across ``kinds``, the first kinds taking the remainder."""
    base, extra = divmod(total, len(kinds))
    return {kind: base + (1 if i < extra else 0) for i, kind in enumerate(kinds)}


def collect(kind: str, forge: Forge, count: int) -> list[Poison]:
    """``count`` poisons of one kind, drawn by a derandomized, generate-only Hypothesis run."""
    found: list[Poison] = []
    if count <= 0:
        return found

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(KINDS[kind](forge))
    def draw_one(poison: Poison | None) -> None:
        if poison is None:
            reject()  # encode refused it (counted in forge.skipped): draw another
        found.append(poison)  # type: ignore[arg-type]

    draw_one()
    return found


def generate(forge: Forge, total: int) -> list[Poison]:
    """About ``total`` poisons over every kind (fewer when Hypothesis runs out of distinct examples)."""
    return [poison for kind, count in shares(total).items() for poison in collect(kind, forge, count)]


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


def describe(poison: Poison) -> str:
    return f"[{poison.kind}] {poison.detail} at {poison.where()}"


def as_dict(poison: Poison) -> dict[str, Any]:
    out = dataclasses.asdict(poison)
    out.pop("records")
    out.pop("event")
    return out


# -- judging: the DLQ as read back, and what the job view shows -----------------------------------

TERMINAL_TASK = frozenset({"completed", "failed", "expired", "cancelled"})
TERMINAL_STORY = frozenset({"completed", "failed", "cancelled"})
FAILED_TASK = frozenset({"failed", "expired"})


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
