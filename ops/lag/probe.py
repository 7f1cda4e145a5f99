"""The end-to-end probe's logic: probe stories, where they go, and their stage times (pure, no I/O).

A probe is one tiny one-scene story per tier, submitted straight to ``stories.submitted`` by the
prober (:mod:`ops.lag.prober`) under the reserved account :data:`schemas.ids.PROBE_ACCOUNT`, with an
id starting with :data:`schemas.ids.PROBE_STORY_PREFIX`. It takes the real path: the splitter and the
batcher handle it like any story (so it may share a batch with users' tasks of the same signature, and
measures the batch wait they see); the GPU consumer ends its task at once without a render
(``gpu_consumers/probes.py``); the materializer reduces it in memory and produces its StoryCompleted,
and writes no document of it (``streams/view_loop.py``). Users' stories and the job view's account data
are never touched.

Stage times are read from Kafka record timestamps and are *cumulative*, seconds since the probe's
StorySubmitted record, so they are ordered along the path:

* ``split``: its TaskRequested on ``tasks.requested``;
* ``batch``: the BatchReady holding its task on ``batches.<pool>.<tier>``;
* ``dispatch``: its TaskStarted on ``task.events`` (a GPU member took the batch);
* ``run``: its TaskCompleted;
* ``complete``: its StoryCompleted (the materializer saw every task end);
* ``view``: when the materializer's committed offset on ``task.events`` passed that StoryCompleted
  (its flush is written and committed), observed by polling, so late by up to the poll interval.

The difference of two neighbours is the time spent in one stage (``batch - split`` is the batcher's
wait for a full batch or its timeout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ops.lag.groups import WatchedGroup
from schemas.events import (
    BatchReady,
    Event,
    StoryCompleted,
    StorySubmitted,
    TaskCompleted,
    TaskRequested,
    TaskStarted,
)
from schemas.ids import PROBE_ACCOUNT, PROBE_STORY_PREFIX, task_id
from schemas.records import GenerationParams, Scene, TaskType, Tier
from schemas.topics import TopicCatalog

STAGES = ("split", "batch", "dispatch", "run", "complete", "view")
# The smallest clip every pipeline accepts; the GPU consumer never renders it anyway.
PROBE_PARAMS = GenerationParams(
    width=64, height=64, num_frames=5, fps=8, num_inference_steps=2, guidance_scale=5.0
)


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """The topics and the materializer's group one probe round reads, for one pool."""

    pool: str
    stories_submitted: str
    tasks_requested: str
    task_events: str
    materializer_group: str
    batches: tuple[tuple[Tier, str], ...]

    def batches_of(self, tier: Tier) -> str:
        return dict(self.batches)[tier]


def probe_target(groups: Sequence[WatchedGroup], pool: str) -> ProbeTarget | None:
    """Where the probe of ``pool`` goes, from the stages of Storee's groups; ``None`` when one is missing
    (the exporter was narrowed with ``--group``/``--topic``, or the pool is not deployed)."""
    by_stage: dict[tuple[str, str], tuple[str, str]] = {}
    materializer: dict[str, set[str]] = {}  # the materializer's group reads several topics
    for group in groups:
        for topic in group.topics:
            if topic.stage == "materializer":
                materializer.setdefault(group.group, set()).add(topic.topic)
            elif topic.stage is not None:
                by_stage[(topic.stage, topic.tier)] = (group.group, topic.topic)
    wanted = [("splitter", "all"), ("batcher", "all")] + [(f"gpu:{pool}", tier.value) for tier in Tier]
    if any(key not in by_stage for key in wanted):
        return None
    stories = by_stage[("splitter", "all")][1]
    catalog = TopicCatalog.build(prefix=stories.removesuffix("stories.submitted"), pools=(pool,))
    readers = [name for name, topics in materializer.items() if catalog.task_events in topics]
    if len(readers) != 1:
        return None
    return ProbeTarget(
        pool=pool,
        stories_submitted=stories,
        tasks_requested=by_stage[("batcher", "all")][1],
        task_events=catalog.task_events,
        materializer_group=readers[0],
        batches=tuple((tier, by_stage[(f"gpu:{pool}", tier.value)][1]) for tier in Tier),
    )


def probe_story_id(tier: Tier, round_no: int, now_ms: int) -> str:
    """``storee-probe-<tier>-<ms>-<round>``: recognisable, unique per round, sortable by time."""
    return f"{PROBE_STORY_PREFIX}{tier.value}-{now_ms}-{round_no}"


def probe_story(tier: Tier, pool: str, round_no: int, now_ms: int, timeout_ms: int) -> StorySubmitted:
    """The probe story of one tier and round: one scene, the smallest clip, a deadline of one timeout."""
    story_id = probe_story_id(tier, round_no, now_ms)
    return StorySubmitted(
        event_time=now_ms,
        sequence=0,
        story_id=story_id,
        account_id=PROBE_ACCOUNT,
        tier=tier,
        title="storee end-to-end probe",
        task_type=TaskType.TEXT_TO_VIDEO,
        model=pool,
        params=PROBE_PARAMS,
        scenes=(Scene(index=0, prompt="probe"),),
        submitted_at=now_ms,
        deadline=now_ms + timeout_ms,
    )


@dataclass
class ProbeTrace:
    """What one probe has reached so far: record timestamps (ms) per stage, and its StoryCompleted's place."""

    story_id: str
    tier: Tier
    submitted_ms: int
    reached_ms: dict[str, int] = field(default_factory=dict)
    completed_at: tuple[int, int] | None = None  # (partition, offset) of its StoryCompleted

    @property
    def task_id(self) -> str:
        return task_id(self.story_id, 0)

    @property
    def done(self) -> bool:
        return all(stage in self.reached_ms for stage in STAGES)

    def seconds(self) -> dict[str, float]:
        """Cumulative seconds since submission per stage reached (never below 0: clocks of two hosts)."""
        return {
            stage: max(0.0, (self.reached_ms[stage] - self.submitted_ms) / 1000)
            for stage in STAGES
            if stage in self.reached_ms
        }


def stage_of(trace: ProbeTrace, event: Event) -> str | None:
    """The stage ``event`` marks for ``trace``'s probe, or ``None`` when it is not the probe's."""
    if isinstance(event, BatchReady):
        return "batch" if any(t.task_id == trace.task_id for t in event.tasks) else None
    if getattr(event, "story_id", None) != trace.story_id:
        return None
    if isinstance(event, TaskRequested):
        return "split"
    if isinstance(event, TaskStarted):
        return "dispatch"
    if isinstance(event, TaskCompleted):
        return "run"
    if isinstance(event, StoryCompleted) and event.tasks_completed == 1:
        return "complete"  # a probe whose task failed or expired never completes: it times out
    return None


def reach(trace: ProbeTrace, stage: str, timestamp_ms: int) -> None:
    """Record the first time ``stage`` was reached (a redelivered record comes later and is ignored)."""
    trace.reached_ms.setdefault(stage, timestamp_ms)
