"""Which group and topics a Storee stage is, what its replay redoes, and what stops its members.

The groups come from :func:`ops.lag.groups.storee_groups`, so names agree with the services by
construction. One correction: the materializer's group consumes every topic the view is built from
(:func:`streams.view_loop.view_topics`: stories, tasks, batches and task events), not only
``task.events``, so a materializer replay resets all of them.

What a replay redoes, per stage (the text the plan shows):

* **splitter** (``stories.submitted``): re-split. Task ids come from story and scene and event ids are
  derived, so the same TaskRequested records are produced again; downstream they are duplicates.
* **batcher** (``tasks.requested``): re-batch. A duplicate of a task still pending is dropped; a task
  whose batch already closed is batched again, with the same batch id for the same tasks, and a task
  past its deadline ends as TaskExpired (the view keeps a completed or failed outcome: they rank above
  expired).
* **materializer**: re-materialize. A document is a function of the set of its events, so it comes out
  identical; a due StoryCompleted may be produced again with the same event id.
* **webhooks** (``task.events``, the delivery service's group): re-deliver. Deliveries are keyed by
  their event (``started`` by its story's run), so nothing recorded is sent again; the progress
  throttle decides afresh, so a few progress webhooks may be new.
* **gpu:<pool>** (``batches.<pool>.<tier>``): re-render, only with ``--rerender``. ``--execute`` first
  stores a re-render request for each tier group (:mod:`gpu_consumers.rerender`: the offsets each
  partition redoes, ending after ``--rerender-ttl``), then moves the offsets. The GPU consumers render
  every task of a re-delivered batch record in those windows again, stored output or not, and emit a
  new TaskCompleted (same attempt, later event time: the job view shows the new render); a cancelled
  story's task is still skipped. A batch record outside the windows is triaged as always (a stored
  output re-announced from its manifest, a task past its deadline expired). A GPU group named by its
  group name is the same stage, refused the same way without ``--rerender``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.lag.groups import WatchedGroup, WatchedTopic, storee_groups
from ops.replay.exceptions import ReplayError
from ops.runtime.config import ConnectionSettings, Env, pool_names
from schemas.topics import TopicCatalog
from streams.view_loop import view_topics

SPLITTER = "splitter"
BATCHER = "batcher"
MATERIALIZER = "materializer"
WEBHOOKS = "webhooks"
GPU = "gpu:"

EFFECTS = {
    SPLITTER: "re-split: the same TaskRequested again (task ids from story and scene); duplicates downstream",
    BATCHER: "re-batch: same batch ids for the same tasks; a closed batch is sent again; tasks past "
    "their deadline end TaskExpired (the view keeps completed/failed)",
    MATERIALIZER: "re-materialize: identical documents (the view is a function of the set of events); "
    "a StoryCompleted may be re-sent with its same event id",
    WEBHOOKS: "re-deliver: nothing already recorded is sent again (a delivery's id is its event's, a "
    "started webhook's its run's); the progress throttle decides afresh, so a few progress webhooks may "
    "be new; a failed delivery stays failed unless its dead letter is replayed",
    GPU: "re-render: every task of the re-delivered batch records (the offsets below) is rendered again, "
    "stored output or not, and completes anew (the view shows the new render); cancelled stories' tasks "
    "are skipped",
}
GPU_REFUSAL = (
    "a replay of {stage} re-delivers batches to the GPU consumers and renders their tasks again, costing "
    "GPU time; pass --rerender to accept that (it stores a re-render request covering exactly the "
    "re-delivered offsets)"
)


@dataclass(frozen=True, slots=True)
class Target:
    """One group to reset; ``topics`` empty means every topic it has committed offsets on."""

    group: str
    topics: tuple[WatchedTopic, ...] = ()
    stop_hint: str = "stop the group's consumers"

    @property
    def stages(self) -> dict[str, str | None]:
        return {t.topic: t.stage for t in self.topics}


def stage_names(env: Env | None = None) -> tuple[str, ...]:
    pools = pool_names(env or Env())
    return (SPLITTER, BATCHER, MATERIALIZER, WEBHOOKS, *(f"{GPU}{pool}" for pool in pools))


def resolve(name: str, env: Env | None = None) -> tuple[Target, ...]:
    """The groups of stage ``name`` (``splitter``, ``batcher``, ``materializer``, ``gpu:<pool>``,
    ``gpu:<pool>:<tier>``), or the group named ``name`` when it is no stage."""
    env = env or Env()
    groups = storee_groups(env)
    streams_hint = "stop the `storee streams` worker (Ctrl-C in `storee up`, or stop `python -m streams`)"
    if name in (SPLITTER, BATCHER):
        app = groups[0]
        return (Target(app.group, tuple(t for t in app.topics if t.stage == name), streams_hint),)
    if name == MATERIALIZER:
        prefix = ConnectionSettings.from_env(env).topic_prefix
        catalog = TopicCatalog.build(prefix=prefix, pools=pool_names(env))
        topics = tuple(WatchedTopic(t, MATERIALIZER) for t in view_topics(catalog))
        return (Target(groups[1].group, topics, streams_hint),)
    gpu_groups = [g for g in groups if any(is_gpu(t.stage) for t in g.topics)]
    if name == WEBHOOKS:
        (webhooks,) = [g for g in groups if any(t.stage == WEBHOOKS for t in g.topics)]
        hint = "stop the webhook delivery service (`storee webhooks`, or Ctrl-C in `storee up`)"
        return (Target(webhooks.group, webhooks.topics, hint),)
    if name.startswith(GPU):
        pool, _, tier = name[len(GPU) :].partition(":")
        chosen = [g for g in gpu_groups if _gpu_match(g, pool, tier)]
        if not chosen:
            raise ReplayError(f"no GPU stage {name!r}; known stages: {', '.join(stage_names(env))}")
        hint = (
            f"stop the GPU consumers of pool {pool} (`storee gpu-consumer --pool {pool}`, "
            "or Ctrl-C in `storee up`)"
        )
        return tuple(Target(g.group, g.topics, hint) for g in chosen)
    for group in gpu_groups:  # a GPU group by its name is its stage: the same --rerender rules
        if group.group == name:
            pool = next((t.stage[len(GPU) :] for t in group.topics if t.stage), "")
            hint = f"stop the GPU consumers of pool {pool} (`storee gpu-consumer --pool {pool}`)"
            return (Target(group.group, group.topics, hint),)
    return (Target(name),)


def _gpu_match(group: WatchedGroup, pool: str, tier: str) -> bool:
    return any(t.stage == f"{GPU}{pool}" and (not tier or t.tier == tier) for t in group.topics)


def effect_of(stage: str | None) -> str | None:
    if stage is None:
        return None
    return EFFECTS[GPU] if stage.startswith(GPU) else EFFECTS.get(stage)


def is_gpu(stage: str | None) -> bool:
    return stage is not None and stage.startswith(GPU)
