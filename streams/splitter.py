"""The splitter's shell: StorySubmitted records in, TaskRequested records out (logic in ``splitting``).

Guarantee: at least once. Tasks are sent through Faust's producer, which Faust flushes before it commits
the story's offset; a crash re-splits the story into the same task ids and event ids, so downstream
consumers see duplicates they can recognise. A story that yields no scenes produces nothing here: the
materializer runs the same split and fails the story with the reason. Records that are not a decodable
StorySubmitted go to the DLQ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from schemas.codec import Codec
from schemas.events import StorySubmitted
from schemas.exceptions import CodecError
from schemas.topics import TopicCatalog
from streams.dead_letters import letter_for
from streams.exceptions import EmptyStory, UnexpectedEvent
from streams.metrics import StreamMetrics
from streams.outlet import Outlet
from streams.splitting import SplitPolicy, split

log = logging.getLogger(__name__)

AGENT = "splitter"


class Splitter:
    def __init__(
        self,
        *,
        policy: SplitPolicy,
        catalog: TopicCatalog,
        codec: Codec,
        outlet: Outlet,
        metrics: StreamMetrics,
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.codec = codec
        self.outlet = outlet
        self.metrics = metrics
        self._events_in = metrics.events_in.labels(AGENT)
        self._tasks_out = metrics.events_out.labels(AGENT, "TaskRequested")

    def handle(self, messages: Iterable[Any]) -> None:
        """Split each consumed message (a Faust ``Message``: topic, partition, offset, key, value)."""
        for message in messages:
            self._events_in.inc()
            try:
                story = self.codec.decode(message.value)
                if not isinstance(story, StorySubmitted):
                    raise UnexpectedEvent(
                        f"{type(story).__name__} on {message.topic}, expected StorySubmitted"
                    )
            except (CodecError, UnexpectedEvent) as exc:
                self._dead_letter(message, exc)
                continue
            try:
                tasks = split(story, self.policy)
            except EmptyStory as exc:
                log.info("story_id=%s yields no tasks: %s", story.story_id, exc)
                continue
            key = story.story_id.encode()
            for task in tasks:
                self.outlet.send(self.catalog.tasks_requested, key=key, value=self.codec.encode(task))
            self._tasks_out.inc(len(tasks))

    def _dead_letter(self, message: Any, error: Exception) -> None:
        record = letter_for(message, error, AGENT)
        self.outlet.send(self.catalog.dlq, key=record.key, value=record.value, headers=record.headers)
        self.metrics.dlq.labels(AGENT).inc()
