"""End to end on real processes: stories in over HTTP and straight from Kafka, out as mp4 clips; the
GPU consumer and the streams worker killed with SIGKILL mid-work and restarted by the supervisor.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import imageio.v2 as imageio
import pytest

from ops.bench.system_under_test import PARAMS
from ops.client import ClientSettings, StoreeClient
from ops.runtime.config import Secret
from ops.runtime.kafka import DurableProducer, make_consumer
from schemas.codec import Codec
from schemas.events import BatchReady, StoryCompleted, StorySubmitted
from schemas.ids import new_event_id, now_ms
from schemas.records import GenerationParams, Scene, TaskType, Tier
from tests.e2e.conftest import RunningSystem
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CODEC = Codec()


def submit(running: RunningSystem, tier: str, prompts: list[str], title: str) -> str:
    body = {
        "title": title,
        "task_type": "text_to_video",
        "model": "default",
        "params": PARAMS,
        "scenes": [{"prompt": prompt} for prompt in prompts],
    }
    response = running.http.post("/v1/stories", json=body, headers=running.auth(tier))
    assert response.status_code == 202, response.text
    return response.json()["story_id"]


def wait_completed(running: RunningSystem, story_ids: list[str], timeout: float = 240.0) -> None:
    def done() -> bool:
        statuses = [(running.story(s) or {}).get("status") for s in story_ids]
        assert "failed" not in statuses and "cancelled" not in statuses, statuses
        return all(status == "completed" for status in statuses)

    wait_for(done, timeout, f"stories {story_ids} to complete")


def events_of(running: RunningSystem, topics: list[str], kinds: tuple[type, ...]) -> list:
    """Every event of the given kinds on the topics, read from the beginning."""
    consumer = make_consumer(
        running.bootstrap, f"e2e-reader-{new_event_id()}", **{"enable.partition.eof": True}
    )
    consumer.subscribe(topics)
    found, eof = [], set()
    try:
        while True:
            message = consumer.poll(1.0)
            if message is None:
                if eof and len(eof) >= len(consumer.assignment()):
                    break
                continue
            if message.error():
                eof.add((message.topic(), message.partition()))
                if consumer.assignment() and len(eof) >= len(consumer.assignment()):
                    break
                continue
            event = CODEC.decode(message.value())
            if isinstance(event, kinds):
                found.append(event)
    finally:
        consumer.close()
    return found


def assert_clips(running: RunningSystem, story_id: str, scenes: int) -> None:
    story = running.story(story_id)
    tasks = running.tasks(story_id)
    assert story["task_count"] == scenes and story["counts"]["completed"] == scenes
    assert len(tasks) == scenes
    for task in tasks:
        assert task["status"] == "completed" and len(task["outputs"]) == 1, task
        path = running.output_dir / "outputs" / story_id / f"{task['_id']}.mp4"
        assert path.exists(), path
        with imageio.get_reader(path, format="ffmpeg") as reader:  # type: ignore[call-arg]
            frames = [frame for frame in reader]
        assert len(frames) == PARAMS["num_frames"] and frames[0].shape[:2] == (64, 64)


def assert_completed_once(running: RunningSystem, story_ids: list[str]) -> None:
    completed = Counter(
        e.story_id for e in events_of(running, [running.catalog.task_events], (StoryCompleted,))
    )
    assert all(completed[s] == 1 for s in story_ids), completed


def test_http_and_outside_producer_stories_reach_story_completed(running: RunningSystem):
    over_http = submit(running, "premium", ["a fox in the snow", "the fox runs at dawn"], "http story")
    outside = new_event_id()
    event = StorySubmitted(
        story_id=outside,
        account_id="outside-service",
        tier=Tier.FREE,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="default",
        submitted_at=now_ms(),
        title="from another service",
        params=GenerationParams(**PARAMS),
        scenes=(Scene(index=0, prompt="a lighthouse at dusk"), Scene(index=1, prompt="a storm over the sea")),
    )
    producer = DurableProducer(running.bootstrap)
    producer.produce_sync(running.catalog.stories_submitted, CODEC.encode(event), key=outside)
    producer.close()

    wait_completed(running, [over_http, outside])
    assert_clips(running, over_http, 2)
    assert_clips(running, outside, 2)
    assert_completed_once(running, [over_http, outside])
    body = running.http.get(f"/v1/stories/{over_http}", headers=running.auth("premium")).json()
    assert body["status"] == "completed" and len(body["outputs"]) == 2


def test_premium_and_free_submitted_together_all_finish(running: RunningSystem):
    stories = [
        submit(running, tier, [f"{tier} scene {i}" for i in range(3)], f"{tier} {n}")
        for n in range(2)
        for tier in ("premium", "free")
    ]
    wait_completed(running, stories)
    for story_id in stories:
        assert_clips(running, story_id, 3)
    assert_completed_once(running, stories)


def test_retry_of_a_failed_story_completes_it(running: RunningSystem):
    # One second to start while the batcher waits BATCH_TIMEOUT (4 s) for a fuller batch: both expire.
    body = {"task_type": "text_to_video", "model": "default", "params": PARAMS, "start_within_s": 1,
            "scenes": [{"prompt": "a kite over the dunes"}, {"prompt": "the kite lands"}]}  # fmt: skip
    response = running.http.post("/v1/stories", json=body, headers=running.auth("free"))
    assert response.status_code == 202, response.text
    story_id = response.json()["story_id"]
    url = f"/v1/stories/{story_id}"
    wait_for(lambda: (running.story(story_id) or {}).get("status") == "failed", 120, "the story to expire")
    assert running.story(story_id)["counts"]["expired"] == 2

    refused = running.http.post(f"{url}/retry", json={"start_within_s": 0}, headers=running.auth("free"))
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "start_within_s", refused.text
    other = running.http.post(f"{url}/retry", headers=running.auth("premium"))
    assert other.status_code == 404  # another account's story reads like a missing one
    # Through the client, as `storee retry STORY_ID --start-within 600` does.
    client = StoreeClient(
        ClientSettings(url=str(running.http.base_url).rstrip("/"), api_key=Secret(running.keys["free"]))
    )
    try:
        retried_body = client.retry(story_id, start_within_s=600)
    finally:
        client.close()
    assert retried_body["retry"] == 1 and sorted(retried_body["task_ids"]) == [
        f"{story_id}:0",
        f"{story_id}:1",
    ]

    reopened = wait_for(
        lambda: (running.story(story_id) or {}).get("retry") == 1, 60, "the retry in the view"
    )
    wait_completed(running, [story_id])
    assert reopened
    assert_clips(running, story_id, 2)
    assert {t["attempt"] for t in running.tasks(story_id)} == {10}  # the first attempt of run 1
    again = running.http.post(f"{url}/retry", headers=running.auth("free"))
    assert again.status_code == 409 and "nothing to retry" in again.json()["error"]["message"], again.text

    def both_runs_ended():
        shown = running.http.get(url, headers=running.auth("free")).json()
        return shown if all(run["ended_at"] for run in shown["attempts"]) else None

    shown = wait_for(both_runs_ended, 60, "both runs' StoryCompleted in the view")
    assert shown["retry"] == 1 and [run["retry"] for run in shown["attempts"]] == [0, 1]
    first, second = shown["attempts"]
    assert (first["tasks"], first["tasks_expired"], first["tasks_completed"]) == (2, 2, 0)
    assert (second["tasks"], second["tasks_completed"], second["tasks_expired"]) == (2, 2, 0)
    ends = [
        e
        for e in events_of(running, [running.catalog.task_events], (StoryCompleted,))
        if e.story_id == story_id
    ]
    # One StoryCompleted per run, each with its own id (a duplicate of either carries the same id).
    distinct = {e.event_id: e.retry for e in ends}
    assert sorted(distinct.values()) == [0, 1]


def test_gpu_consumer_killed_mid_batch_is_restarted_and_nothing_is_lost(running: RunningSystem):
    story_id = submit(running, "premium", [f"scene {i} of a long story" for i in range(4)], "gpu crash")
    wait_for(
        lambda: any(t["status"] == "running" for t in running.tasks(story_id)), 120, "a task to start running"
    )
    pid = running.pid("gpu-consumer")
    os.killpg(pid, signal.SIGKILL)
    wait_for(
        lambda: running.pid("gpu-consumer") not in (None, pid),
        30,
        "the supervisor to restart the GPU consumer",
    )
    wait_completed(running, [story_id])
    assert_clips(running, story_id, 4)
    assert_completed_once(running, [story_id])


def test_streams_killed_mid_batching_is_restarted_and_every_task_batched_once(running: RunningSystem):
    story_id = submit(
        running, "free", [f"scene {i} waiting for its batch" for i in range(3)], "streams crash"
    )
    # Three tasks of a batch of four wait up to BATCH_TIMEOUT in the batcher's table: kill it then.
    wait_for(lambda: len(running.tasks(story_id)) == 3, 60, "the story's tasks in the view", interval=0.05)
    pid = running.pid("streams")
    os.killpg(pid, signal.SIGKILL)
    # The kill must have hit the batcher holding a partial batch, or this test proves nothing.
    assert {t["status"] for t in running.tasks(story_id)} == {"queued"}
    wait_completed(running, [story_id])
    assert_clips(running, story_id, 3)
    assert_completed_once(running, [story_id])
    batches = events_of(running, [running.catalog.batches("default", "free")], (BatchReady,))
    holding = Counter()
    # A batch re-sent after the crash carries the same batch_id: count each distinct batch once.
    for task_ids in {b.batch_id: tuple(t.task_id for t in b.tasks) for b in batches}.values():
        holding.update(t for t in task_ids if t.startswith(story_id))
    assert sorted(holding) == sorted(t["_id"] for t in running.tasks(story_id))
    assert set(holding.values()) == {1}, holding
