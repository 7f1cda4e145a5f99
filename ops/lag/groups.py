"""Which consumer groups Storee runs, which topics each consumes, and the stage and tier of each.

Derived from the same settings the services read, so the names agree by construction (a test pins them
against ``streams.settings`` and ``gpu_consumers.settings``):

- the Faust app's group, ``STREAMS_APP_ID`` (default ``<prefix>streams``): ``stories.submitted`` is the
  splitter's stage, ``tasks.requested`` the batcher's;
- the materializer's group, ``MATERIALIZER_GROUP`` (default ``<app id>-view``): every topic the job view
  is built from (:func:`streams.view_loop.view_topics`: stories, tasks, batches per tier, task events);
- per pool and tier, ``<prefix>gpu-consumers.<pool>.<tier>``: ``batches.<pool>.<tier>``, stage
  ``gpu:<pool>``;
- the webhook delivery service's group, ``WEBHOOK_GROUP`` (default ``<prefix>webhooks``):
  ``task.events``, stage ``webhooks``.

A group named on the command line that is not one of these is watched on every topic it has committed
offsets on or is assigned, with no stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ops.runtime.config import ConnectionSettings, Env, pool_names
from schemas.records import Tier
from schemas.topics import TopicCatalog
from streams.view_loop import view_topics

NO_TIER = "all"


@dataclass(frozen=True, slots=True)
class WatchedTopic:
    """A topic a group consumes, with the Storee stage it feeds (``None`` outside Storee)."""

    topic: str
    stage: str | None = None
    tier: str = NO_TIER


@dataclass(frozen=True, slots=True)
class WatchedGroup:
    """A group to read; ``topics`` empty means every topic it has offsets on or is assigned."""

    group: str
    topics: tuple[WatchedTopic, ...] = ()
    only_topics: frozenset[str] = frozenset()  # for a group read on all its topics: keep just these

    def topic(self, name: str) -> WatchedTopic:
        for watched in self.topics:
            if watched.topic == name:
                return watched
        return WatchedTopic(name)


def storee_groups(env: Env | None = None) -> tuple[WatchedGroup, ...]:
    """Storee's own groups for the deployment ``env`` describes (``TOPIC_PREFIX``, pools, group ids)."""
    env = env or Env()
    prefix = ConnectionSettings.from_env(env).topic_prefix
    pools = pool_names(env)
    catalog = TopicCatalog.build(prefix=prefix, pools=pools)
    app_id = env.str("STREAMS_APP_ID", f"{prefix}streams")
    groups = [
        WatchedGroup(
            app_id,
            (
                WatchedTopic(catalog.stories_submitted, "splitter"),
                WatchedTopic(catalog.tasks_requested, "batcher"),
            ),
        ),
        WatchedGroup(
            env.str("MATERIALIZER_GROUP", f"{app_id}-view"),
            tuple(
                WatchedTopic(topic, "materializer", _tier_of(catalog, topic))
                for topic in view_topics(catalog)
            ),
        ),
    ]
    for pool in pools:
        for tier in Tier:
            groups.append(
                WatchedGroup(
                    f"{prefix}gpu-consumers.{pool}.{tier.value}",
                    (WatchedTopic(catalog.batches(pool, tier), f"gpu:{pool}", tier.value),),
                )
            )
    # The webhook delivery service (streams.webhook_settings): task.events, stage ``webhooks``.
    groups.append(
        WatchedGroup(
            env.str("WEBHOOK_GROUP", f"{prefix}webhooks"), (WatchedTopic(catalog.task_events, "webhooks"),)
        )
    )
    return tuple(groups)


def _tier_of(catalog: TopicCatalog, topic: str) -> str:
    for pool in catalog.pools:
        for tier in Tier:
            if topic == catalog.batches(pool, tier):
                return tier.value
    return NO_TIER


def select(
    known: Iterable[WatchedGroup], names: Iterable[str] = (), topics: Iterable[str] = ()
) -> tuple[WatchedGroup, ...]:
    """``known`` narrowed to the groups in ``names`` (a name not known is read with all its topics),
    then to the topics in ``topics``; an empty filter keeps everything."""
    known = tuple(known)
    wanted = list(dict.fromkeys(names))
    if wanted:
        by_name = {group.group: group for group in known}
        chosen = tuple(by_name.get(name, WatchedGroup(name)) for name in wanted)
    else:
        chosen = known
    topic_filter = frozenset(topics)
    if not topic_filter:
        return chosen
    narrowed = []
    for group in chosen:
        if not group.topics:  # read everything, keep these topics after the read
            narrowed.append(WatchedGroup(group.group, (), topic_filter))
            continue
        kept = tuple(t for t in group.topics if t.topic in topic_filter)
        if kept:
            narrowed.append(WatchedGroup(group.group, kept))
    return tuple(narrowed)
