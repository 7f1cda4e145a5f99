"""What a poison is made of: the record and what the system owes for it, valid building blocks, and
the values that break the contract.

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

The valid building blocks (:func:`story_submitted`, :func:`task_requested`, :func:`batch_task`,
:func:`batch_ready`, :func:`output`, and the ``PROMPT``/``TIER``/``SEED`` strategies they are drawn
with) make contract-valid events of the ``default`` pool; the tables after them (``BAD_IDS``,
``PARAM_BAD``, ``ENVELOPE_BAD``, ``BAD_MEDIA``, ``STORY_BAD``, ``TASK_BAD``, ``BAD_TASK_IDS``) each
break one rule. The strategies that draw from them are in ``poison_work.py`` (stories, tasks,
batches) and ``poison_events.py`` (task events, wrong topics, undecodable bytes, replays);
``poison.py`` draws every kind, ``poison_verdict.py`` judges what the system did with them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

from schemas.codec import Codec
from schemas.events import BatchReady, Event, StorySubmitted, TaskRequested
from schemas.exceptions import CodecError
from schemas.ids import batch_id, now_ms
from schemas.records import BatchTask, GenerationParams, MediaRef, OutputArtifact, Scene, TaskType, Tier

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


def encode_or_skip(forge: Forge, event: Event, kind: str) -> bytes | None:
    try:
        return forge.encode(event)
    except CodecError:
        forge.skipped[kind] += 1
        return None


def describe(poison: Poison) -> str:
    return f"[{poison.kind}] {poison.detail} at {poison.where()}"


def as_dict(poison: Poison) -> dict[str, Any]:
    out = dataclasses.asdict(poison)
    out.pop("records")
    out.pop("event")
    return out


# -- valid building blocks ------------------------------------------------------------------------

PROMPT = st.from_regex(r"[a-z][a-z ]{2,24}[a-z]", fullmatch=True)
TIER = st.sampled_from([Tier.FREE, Tier.PREMIUM])
SEED = st.one_of(st.none(), st.integers(0, 10_000))


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


def params_with(**changes: Any) -> Callable[[Any], Any]:
    return lambda e: replace(e, params=replace(e.params, **changes))


PARAM_BAD: list[Mutation] = [
    ("params.width=2**31-1", params_with(width=2**31 - 1)),
    ("params.guidance_scale=nan", params_with(guidance_scale=math.nan)),
    ("params.num_frames=2**31-1", params_with(num_frames=2**31 - 1)),
    ("params.width=-1", params_with(width=-1)),
    ("params.height=2**31-1", params_with(height=2**31 - 1)),
    ("params.height=-64", params_with(height=-64)),
    ("params.num_frames=-1", params_with(num_frames=-1)),
    ("params.fps=-1", params_with(fps=-1)),
    ("params.fps=2**31-1", params_with(fps=2**31 - 1)),
    ("params.num_inference_steps=-1", params_with(num_inference_steps=-1)),
    ("params.num_inference_steps=10001", params_with(num_inference_steps=10_001)),
    ("params.guidance_scale=inf", params_with(guidance_scale=math.inf)),
    ("params.guidance_scale=-inf", params_with(guidance_scale=-math.inf)),
    ("params.guidance_scale=-0.5", params_with(guidance_scale=-0.5)),
    ("params.guidance_scale=100.5", params_with(guidance_scale=100.5)),
    ("params.seed=-1", params_with(seed=-1)),
    ("params.seed=-(2**63)", params_with(seed=-(2**63))),
    ("params.audio_length_s=nan", params_with(audio_length_s=math.nan)),
    ("params.negative_prompt of 20001 characters", params_with(negative_prompt="n" * 20_001)),
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
    ("params.width=2**31-1", params_with(width=2**31 - 1)),
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
