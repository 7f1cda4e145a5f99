"""The splitter's shell: StorySubmitted records in, TaskRequested records out (logic in ``splitting``).

Guarantee: at least once. Tasks are sent through Faust's producer, which Faust flushes before it commits
the story's offset; a crash re-splits the story into the same task ids and event ids, so downstream
consumers see duplicates they can recognise. A story that yields no scenes produces nothing here: the
materializer runs the same split and fails the story with the reason. Records that are not a decodable
StorySubmitted keeping the contract (:mod:`schemas.contract`) go to the DLQ; so does a story that fails
in any other way, and its tasks get TaskFailed with the reason. One record's failure never stops the
others.

An I/O shell, named ``*_agent`` because an agent of the Faust app (:mod:`streams.app`) hands it
its records; the pure logic it calls is in :mod:`streams.splitting`.
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
from streams.rejections import CONSUMER_ID, rejected_task
from streams.splitting import SplitPolicy, plan_scenes, split

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
        """Split each consumed message (a Faust ``Message``: topic, partition, offset, key, value).

        Never raises for one record: whatever goes wrong with it sends it to the DLQ with the reason
        (and fails the tasks it would have made, where they can be named), and the next record is split.
        The caller acks every record it handed in, so none may be left unhandled.
        """
        for message in messages:
            self._events_in.inc()
            story: StorySubmitted | None = None
            try:
                story = self._decode(message)
                self._split(story)
            except Exception as exc:  # noqa: BLE001 - one bad record never costs another
                self._reject(message, story, exc)

    def _decode(self, message: Any) -> StorySubmitted:
        story = self.codec.read(message.value)
        if not isinstance(story, StorySubmitted):
            raise UnexpectedEvent(f"{type(story).__name__} on {message.topic}, expected StorySubmitted")
        return story

    def _split(self, story: StorySubmitted) -> None:
        try:
            tasks = split(story, self.policy)
        except EmptyStory as exc:
            # Not a bad record: the materializer runs the same split and fails the story with the reason.
            log.info("story_id=%s yields no tasks: %s", story.story_id, exc)
            return
        key = story.story_id.encode()
        encoded = [self.codec.encode(task) for task in tasks]  # all or nothing: encode before sending
        for value in encoded:
            self.outlet.send(self.catalog.tasks_requested, key=key, value=value)
        self._tasks_out.inc(len(tasks))

    def _reject(self, message: Any, story: StorySubmitted | None, error: Exception) -> None:
        if not isinstance(error, CodecError | UnexpectedEvent):
            log.exception("story could not be split topic=%s offset=%s", message.topic, message.offset)
        self._dead_letter(message, error)
        if story is not None:
            self._fail_tasks(story, error)

    def _fail_tasks(self, story: StorySubmitted, error: Exception) -> None:
        """End the tasks a decodable story would have had, so its owner sees why (best effort)."""
        try:
            count = len(plan_scenes(story, self.policy))
        except Exception:  # noqa: BLE001 - the view fails a story that cannot be planned by itself
            return
        for index in range(count):
            event = rejected_task(story, index, error, CONSUMER_ID)
            self.outlet.send(
                self.catalog.task_events, key=story.story_id.encode(), value=self.codec.encode(event)
            )
        self.metrics.events_out.labels(AGENT, "TaskFailed").inc(count)

    def _dead_letter(self, message: Any, error: Exception) -> None:
        record = letter_for(message, error, AGENT)
        self.outlet.send(self.catalog.dlq, key=record.key, value=record.value, headers=record.headers)
        self.metrics.dlq.labels(AGENT).inc()
