"""GET /v1/stories/{id}/events over real uvicorn on the real broker and FerretDB.

One gateway serves the module (a few seconds to start); each test has its own accounts and stories. The
job view is written by hand (the materializer is not running) and task events are produced by hand to
``task.events`` (three partitions, so a story's partition is computed, not assumed), which is exactly
what the gateway reads: the fan-out is fed by Kafka alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from confluent_kafka import TopicPartition
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from gateway.accounts import AccountStore, NewAccount
from gateway.settings import GatewaySettings
from gateway.sse import story_partition
from ops import client_commands
from ops.client import ClientSettings, StoreeClient, StreamEvent, parse_sse
from ops.gateway_server import served
from ops.runtime.config import Secret
from ops.runtime.kafka import DurableProducer, admin_client, assign_only_consumer
from ops.runtime.provisioning import ensure_topics
from schemas.codec import Codec
from schemas.events import Event, StoryCompleted, TaskCompleted, TaskProgress, TaskStarted
from schemas.records import OutputArtifact, Tier
from schemas.topics import TopicCatalog
from tests.gateway.environment import gateway_env
from tests.gateway.factories import story_doc, task_doc

pytestmark = pytest.mark.integration

CODEC = Codec()
MAX_STREAMS = 2
IDLE_TIMEOUT_S = 3.0
TIMEOUT = httpx.Timeout(10.0, read=10.0)


@dataclass
class Live:
    url: str
    db: Database
    settings: GatewaySettings
    catalog: TopicCatalog
    producer: DurableProducer

    def account(self) -> NewAccount:
        async def create() -> NewAccount:
            client: AsyncMongoClient = AsyncMongoClient(str(self.settings.mongodb_url))
            try:
                return await AccountStore(client[self.settings.mongodb_database]).create(Tier.PREMIUM)
            finally:
                await client.close()

        return asyncio.run(create())

    def story(self, account: NewAccount, status: str = "running") -> str:
        story_id = f"sse-{uuid.uuid4().hex[:10]}"
        self.db.stories.insert_one(story_doc(story_id, account.account_id, status=status))
        self.db.tasks.insert_one(task_doc(story_id, account.account_id, 0, status=status))
        return story_id

    def publish(self, event: Event) -> int:
        """Produce one event keyed by its story; its offset."""
        message = self.producer.produce_sync(
            self.catalog.task_events,
            CODEC.encode(event),
            key=event.story_id.encode(),  # type: ignore[attr-defined]
        )
        return int(message.offset() or 0)

    def last_offset(self, story_id: str) -> str:
        """The event id of the last record now on the story's partition (``-1``: none)."""
        partition = story_partition(story_id, 3)
        consumer = assign_only_consumer(self.settings.kafka_bootstrap_servers, "test-sse-watermarks")
        try:
            high = consumer.get_watermark_offsets(
                TopicPartition(self.catalog.task_events, partition), timeout=10
            )[1]
        finally:
            consumer.close()
        return f"{partition}-{high - 1}"

    def client(self, account: NewAccount) -> StoreeClient:
        return StoreeClient(ClientSettings(self.url, Secret(account.api_key)))

    @contextlib.contextmanager
    def open(
        self, account: NewAccount, story_id: str, last_event_id: str | None = None
    ) -> Iterator[httpx.Response]:
        """The raw stream; waits out the fan-out's first connection to Kafka (503 for a moment)."""
        headers = {"Authorization": f"Bearer {account.api_key}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=self.url, timeout=TIMEOUT) as http:
            while True:
                with http.stream("GET", f"/v1/stories/{story_id}/events", headers=headers) as response:
                    if response.status_code != 503 or time.monotonic() > deadline:
                        yield response
                        return
                    response.read()
                time.sleep(0.1)  # polling a condition (the fan-out connected) with a deadline


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, mongo_url: str, mongo_client: MongoClient, tmp_path_factory) -> Iterator[Live]:
    unique = uuid.uuid4().hex[:10]
    catalog = TopicCatalog.build(prefix=f"t{unique}.", partitions={"task.events": 3})
    admin = admin_client(kafka_bootstrap)
    ensure_topics(admin, catalog)
    settings = GatewaySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        mongodb_url=Secret(mongo_url),
        mongodb_database=f"t_{unique}",
        topic_prefix=catalog.prefix,
        output_dir=tmp_path_factory.mktemp("sse") / "outputs",
        user_limit_per_minute=100_000,
        account_rate_per_minute=100_000,
        account_burst=10_000,
    )
    env = {
        **gateway_env(settings),
        "SSE_KEEPALIVE": "0.3",
        "SSE_IDLE_TIMEOUT": str(IDLE_TIMEOUT_S),
        "SSE_MAX_STREAMS_PER_ACCOUNT": str(MAX_STREAMS),
    }
    producer = DurableProducer(kafka_bootstrap)
    try:
        with served(env) as url:
            yield Live(url, mongo_client[settings.mongodb_database], settings, catalog, producer)
    finally:
        producer.close(10)
        mongo_client.drop_database(settings.mongodb_database)
        for future in admin.delete_topics(list(catalog.names)).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def started(story_id: str) -> TaskStarted:
    return TaskStarted(story_id=story_id, task_id=f"{story_id}:0", batch_id="b", consumer_id="c")


def step(story_id: str, n: int) -> TaskProgress:
    return TaskProgress(
        story_id=story_id, task_id=f"{story_id}:0", batch_id="b", consumer_id="c", step=n, total_steps=1000
    )


def done(story_id: str) -> TaskCompleted:
    output = OutputArtifact(uri="file:///x.mp4", media_type="video/mp4", size_bytes=1, duration_s=1.0)
    return TaskCompleted(
        story_id=story_id, task_id=f"{story_id}:0", batch_id="b", consumer_id="c", outputs=(output,),
        run_ms=5, gpu_seconds=1.0,
    )  # fmt: skip


def ended(story_id: str, account: NewAccount, failed: int = 0) -> StoryCompleted:
    return StoryCompleted(
        story_id=story_id, account_id=account.account_id, tasks_completed=1 - failed, tasks_failed=failed,
        tasks_expired=0, gpu_seconds=1.0,
    )  # fmt: skip


def offset_of(event: StreamEvent) -> int:
    assert event.id is not None
    return int(event.id.split("-", 1)[1])


def test_events_arrive_in_order_after_the_snapshot_and_the_stream_closes_after_the_story_ends(live: Live):
    account = live.account()
    story_id, other = live.story(account), live.story(account)
    with live.open(account, story_id) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        events = parse_sse(lines)
        snapshot = next(events)
        assert (snapshot.name, snapshot.data["story_id"], snapshot.data["status"]) == (
            "snapshot",
            story_id,
            "running",
        )
        assert snapshot.data["tasks"][0]["task_id"] == f"{story_id}:0"  # the story GET's JSON
        assert snapshot.id is not None and snapshot.id.startswith(f"{story_partition(story_id, 3)}-")
        sent = [
            started(story_id),
            step(story_id, 1),
            step(story_id, 2),
            done(story_id),
            ended(story_id, account),
        ]
        offsets = []
        for event in sent:
            offsets.append(live.publish(event))
            live.publish(step(other, 9))  # another story of the same account: not on this stream
        got = list(events)  # ends only when the gateway closes the stream
    assert [e.name for e in got] == [
        "task.started",
        "task.progress",
        "task.progress",
        "task.completed",
        "story.completed",
    ]
    assert [offset_of(e) for e in got] == offsets
    assert [e.data["event_id"] for e in got] == [e.event_id for e in sent]
    assert got[1].data["step"] == 1 and got[-1].data["tasks_completed"] == 1


def test_a_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(live: Live):
    account = live.account()
    story_id = live.story(account)
    total = 60
    produced = threading.Semaphore(0)
    with live.open(account, story_id) as response:  # subscribe first: the producer starts after it
        snapshot = next(parse_sse(response.iter_lines()))

    def produce() -> None:
        for n in range(total):
            live.publish(step(story_id, n))
            produced.release()
            time.sleep(0.01)  # spread over the reconnects, not synchronisation
        live.publish(ended(story_id, account))

    producer = threading.Thread(target=produce)
    producer.start()
    client = live.client(account)
    steps: list[int] = []
    last = snapshot.id
    try:
        # Three connections, each dropped after a few events while the producer goes on writing: each
        # reconnect reads back from the log what was written meanwhile, then goes live.
        for _ in range(3):
            for event in client.events(story_id, last_event_id=last):
                steps.append(event.data["step"])
                last = event.id
                if len(steps) % 15 == 0:
                    break
            assert produced.acquire(timeout=30)  # something was written while nobody listened
        names = []
        for event in client.events(story_id, last_event_id=last):
            names.append(event.name)
            last = event.id
            if event.name == "task.progress":
                steps.append(event.data["step"])
    finally:
        producer.join(30)
        client.close()
    assert steps == list(range(total))
    assert names[-1] == "story.completed" and names.count("story.completed") == 1
    # Resumed after the end (the view, which no materializer writes here, still says running): 204, so
    # an EventSource stops reconnecting.
    with live.open(account, story_id, last_event_id=last) as response:
        assert response.status_code == 204


def test_a_story_that_already_ended_gets_its_snapshot_and_the_stream_closes(live: Live):
    account = live.account()
    story_id = live.story(account, status="completed")
    with live.open(account, story_id) as response:
        got = list(parse_sse(response.iter_lines()))
    assert [(e.name, e.data["status"]) for e in got] == [("snapshot", "completed")]
    with live.open(account, story_id, last_event_id=got[0].id) as response:
        assert response.status_code == 204


def test_only_the_owner_may_follow_a_story_and_a_foreign_event_id_is_refused(live: Live):
    owner, stranger = live.account(), live.account()
    story_id = live.story(owner)
    with live.open(stranger, story_id) as response:
        assert response.status_code == 404
    with live.open(owner, "no-such-story") as response:
        assert response.status_code == 404
    wrong = (story_partition(story_id, 3) + 1) % 3
    with live.open(owner, story_id, last_event_id=f"{wrong}-0") as response:
        response.read()
        assert response.status_code == 422 and "not from this story's stream" in response.text
    with live.open(owner, story_id, last_event_id=f"{story_partition(story_id, 3)}-99999999") as response:
        response.read()
        assert response.status_code == 422 and "ahead of the log" in response.text


def test_streams_per_account_are_limited_and_a_closed_one_frees_its_slot(live: Live):
    account, neighbour = live.account(), live.account()
    story_id = live.story(account)
    with contextlib.ExitStack() as held:
        for _ in range(MAX_STREAMS):
            assert held.enter_context(live.open(account, story_id)).status_code == 200
        with live.open(account, story_id) as refused:
            refused.read()
            assert refused.status_code == 429
            assert (
                f"at most {MAX_STREAMS} open event streams per account" in refused.json()["error"]["message"]
            )
            assert "Retry-After" in refused.headers
        with live.open(neighbour, live.story(neighbour)) as other:
            assert other.status_code == 200  # the limit is per account
    deadline = time.monotonic() + 10  # the closed streams' slots are freed when the gateway sees them go
    while True:
        with live.open(account, story_id) as again:
            if again.status_code == 200 or time.monotonic() > deadline:
                assert again.status_code == 200
                break
        time.sleep(0.1)  # polling a condition with a deadline


def test_an_idle_stream_gets_keep_alives_and_ends_after_the_idle_timeout(live: Live):
    account = live.account()
    story_id = live.story(account)
    opened = time.monotonic()
    with live.open(account, story_id) as response:
        lines = list(response.iter_lines())
    took = time.monotonic() - opened
    assert lines.count(": keep-alive") >= 3  # every 0.3 s
    assert f": closing: no event for {IDLE_TIMEOUT_S:g}s; reconnect with Last-Event-ID to go on" in lines
    assert IDLE_TIMEOUT_S <= took < IDLE_TIMEOUT_S + 5


@pytest.mark.parametrize(("status", "failed", "exit_status"), [("completed", 0, 0), ("failed", 1, 1)])
def test_storee_watch_prints_each_event_and_exits_by_how_the_story_ended(
    live: Live, monkeypatch, capsys, status: str, failed: int, exit_status: int
):
    account = live.account()
    story_id = live.story(account, status="running")
    before = live.last_offset(story_id)
    for event in (started(story_id), step(story_id, 5), ended(story_id, account, failed=failed)):
        live.publish(event)
    live.db.stories.update_one({"_id": story_id}, {"$set": {"status": status}})
    monkeypatch.setenv("STOREE_URL", live.url)
    monkeypatch.setenv("STOREE_API_KEY", account.api_key)
    args = argparse.Namespace(story_id=story_id, json=False, last_event_id=before)
    assert client_commands._watch(args) == exit_status
    out = [line for line in capsys.readouterr().out.splitlines() if line]
    assert [line.split()[0] for line in out] == [
        "task.started",
        "task.progress",
        "story.completed",
        f"{story_id}:",
    ]
    assert "step 5/1000" in out[1] and out[-1] == f"{story_id}: {status}"


def test_storee_watch_of_a_finished_story_prints_its_snapshot(live: Live, monkeypatch, capsys):
    account = live.account()
    story_id = live.story(account, status="cancelled")
    monkeypatch.setenv("STOREE_URL", live.url)
    monkeypatch.setenv("STOREE_API_KEY", account.api_key)
    assert client_commands._watch(argparse.Namespace(story_id=story_id, json=True, last_event_id=None)) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and '"event": "snapshot"' in out[0] and '"status": "cancelled"' in out[0]
