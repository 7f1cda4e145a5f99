"""Webhooks end to end: the whole product in child processes (the delivery service among them) posting
to a real HTTP receiver on loopback; signatures checked with the account's secret, retries, a SIGKILL
of the delivery service mid-delivery, a receiver that never answers, 410 Gone, and a host that
resolves to loopback at delivery time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from ops.bench.system_under_test import FAST_ENV, PARAMS
from ops.bench.webhook_receiver import HANG, Receiver, serve_receiver
from ops.runtime.config import Env
from ops.runtime.kafka import make_consumer
from schemas.dlq import ERROR_MESSAGE, SERVICE
from schemas.events import TaskCompleted, TaskProgress
from schemas.ids import new_event_id
from streams.webhook_service import WEBHOOK_ID_HEADER, WebhookService
from streams.webhook_settings import WebhookSettings
from streams.webhook_signing import parse_secret, verify
from tests.e2e.conftest import RunningSystem, start_running
from tests.e2e.test_system import events_of
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Three attempts a few hundred ms apart, short timeouts, a lease a SIGKILLed sender's claim outlives.
WEBHOOK_ENV = {
    **FAST_ENV,  # no rate limits: the tests poll the story's webhook status
    "WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on loopback (the gateway reads the same setting)
    "WEBHOOK_RETRY_SCHEDULE": "0,300ms,300ms",
    "WEBHOOK_RETRY_JITTER": "0",
    "WEBHOOK_TIMEOUT": "3",
    "WEBHOOK_CONNECT_TIMEOUT": "1",
    "WEBHOOK_LEASE": "5",
    "WEBHOOK_POLL_INTERVAL": "0.2",
}
STEPS = 12  # progress events enough for the throttle to matter


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as served:
        yield served


@pytest.fixture(scope="module")
def running(local_stack, mongo_client, tmp_path_factory) -> Iterator[RunningSystem]:
    yield from start_running(local_stack, mongo_client, tmp_path_factory.mktemp("webhooks"), WEBHOOK_ENV)


def submit(running: RunningSystem, url: str, events: list[str] | None = None, scenes: int = 1) -> str:
    body: dict = {
        "title": "webhooks",
        "params": {**PARAMS, "num_inference_steps": STEPS},
        "scenes": [{"prompt": f"a lantern drifting over a lake, shot {i}"} for i in range(scenes)],
        "webhook_url": url,
    }
    if events is not None:
        body["webhook_events"] = events
    response = running.http.post("/v1/stories", json=body, headers=running.auth("premium"))
    assert response.status_code == 202, response.text
    return response.json()["story_id"]


def deliveries(running: RunningSystem, story_id: str) -> list[dict]:
    return list(running.db["webhook_deliveries"].find({"story_id": story_id}))


def webhook_status(running: RunningSystem, story_id: str) -> dict:
    response = running.http.get(f"/v1/stories/{story_id}", headers=running.auth("premium"))
    if response.status_code == 404:
        return {"status": None}  # not in the job view yet
    assert response.status_code == 200, response.text
    return response.json()["webhook"]


def secrets_of(running: RunningSystem, story_id: str) -> list:
    account = running.story(story_id)["account_id"]
    doc = running.db["webhook_secrets"].find_one({"_id": account})
    return [parse_secret(entry["secret"]) for entry in doc["secrets"]]


def bodies(received) -> list[dict]:
    return [json.loads(r.body) for r in received]


def dead_letters(running: RunningSystem) -> list[dict[str, str]]:
    """The headers of every record on the DLQ, read from the beginning."""
    consumer = make_consumer(running.bootstrap, f"e2e-dlq-{new_event_id()}", **{"enable.partition.eof": True})
    consumer.subscribe([running.catalog.dlq])
    found, eof = [], set()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                if consumer.assignment() and len(eof) >= len(consumer.assignment()):
                    break
                continue
            if message.error():
                eof.add(message.partition())
                if len(eof) >= len(consumer.assignment()):
                    break
                continue
            found.append({k: (v or b"").decode() for k, v in message.headers() or []})
    finally:
        consumer.close()
    return found


def test_filtered_events_arrive_signed_and_progress_is_throttled(running: RunningSystem, receiver: Receiver):
    everything = submit(running, receiver.url("/all"), ["started", "progress", "completed"], scenes=2)
    default = submit(running, receiver.url("/default"))

    def completed(path: str) -> bool:
        return any(b["type"] == "story.completed" for b in bodies(receiver.on(path)))

    wait_for(lambda: completed("/all") and completed("/default"), 240, "both stories' completed webhooks")
    received = receiver.on("/all")
    types = [b["type"] for b in bodies(received)]
    assert types[0] == "story.started" and types.count("story.started") == 1, types
    assert types[-1] == "story.completed" and types.count("story.completed") == 1, types
    progress = [r for r, t in zip(received, types, strict=True) if t == "story.progress"]
    assert progress, types
    keys = secrets_of(running, everything)
    for request in received:
        verify(keys, request.headers, request.body, now=time.time())
        assert json.loads(request.body)["data"]["story_id"] == everything
    assert len({r.webhook_id for r in received}) == len(received)
    assert bodies(received)[-1]["data"]["status"] == "completed"
    assert bodies(received)[-1]["data"]["result"]["tasks_completed"] == 2
    # The throttle: progress events on the log, at most one webhook per 500 ms of them.
    events = [
        e
        for e in events_of(running, [running.catalog.task_events], (TaskProgress, TaskCompleted))
        if e.story_id == everything
    ]
    span_ms = max(e.event_time for e in events) - min(e.event_time for e in events)
    assert len(events) >= 3  # the GPU consumer reports progress a few times a task
    assert len(progress) <= span_ms // 500 + 2, (len(progress), span_ms)
    sent = sorted(json.loads(r.body)["timestamp"] for r in progress)
    assert len(sent) == len(set(sent))

    (only,) = receiver.on("/default")
    assert json.loads(only.body)["type"] == "story.completed"
    verify(secrets_of(running, default), only.headers, only.body, now=time.time())
    wait_for(lambda: webhook_status(running, everything)["status"] == "delivered", 30, "status delivered")
    status = webhook_status(running, everything)
    assert status["events"] == ["started", "progress", "completed"]
    assert status["deliveries"] == len(received) and status["last_error"] is None


def test_500_twice_then_200_is_three_attempts_with_one_webhook_id(running: RunningSystem, receiver: Receiver):
    receiver.script("/flaky", [500, 500, 200])
    story_id = submit(running, receiver.url("/flaky"))
    wait_for(lambda: len(receiver.on("/flaky")) >= 3, 240, "three attempts")
    attempts = receiver.on("/flaky")
    assert len({a.webhook_id for a in attempts}) == 1
    assert [json.loads(a.body) for a in attempts] == [json.loads(attempts[0].body)] * 3
    wait_for(lambda: deliveries(running, story_id)[0]["status"] == "delivered", 30, "delivered")
    (doc,) = deliveries(running, story_id)
    assert doc["attempts"] == 3 and doc["_id"] == attempts[0].webhook_id and doc["last_status"] == 200
    time.sleep(1.0)
    assert len(receiver.on("/flaky")) == 3  # nothing after the 200


def test_delivery_service_killed_mid_delivery_still_delivers(running: RunningSystem, receiver: Receiver):
    receiver.script("/slow", [HANG, 200])
    story_id = submit(running, receiver.url("/slow"))
    wait_for(lambda: len(receiver.on("/slow")) >= 1, 240, "the first attempt to arrive")
    pid = running.pid("webhooks")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # mid-attempt: the receiver has the request and has not answered
    behind = submit(running, receiver.url("/behind"))  # while the service is down
    wait_for(lambda: len(receiver.on("/slow")) >= 2, 90, "the delivery to be tried again after the restart")
    wait_for(lambda: deliveries(running, story_id)[0]["status"] == "delivered", 30, "delivered")
    first, second = receiver.on("/slow")[:2]
    assert first.webhook_id == second.webhook_id and first.body == second.body
    assert deliveries(running, story_id)[0]["attempts"] == 1  # the killed attempt was never recorded
    assert running.pid("webhooks") not in (None, pid)
    wait_for(lambda: len(receiver.on("/behind")) == 1, 240, "the story completed while it was down")
    assert deliveries(running, behind)[0]["status"] == "delivered"


def test_receiver_that_never_answers_ends_failed_in_the_dlq(running: RunningSystem, receiver: Receiver):
    receiver.script("/hang", [HANG])
    story_id = submit(running, receiver.url("/hang"))
    wait_for(lambda: webhook_status(running, story_id)["status"] == "failed", 300, "the webhook to fail")
    status = webhook_status(running, story_id)
    assert "no answer within 3s" in status["last_error"]
    (doc,) = deliveries(running, story_id)
    assert doc["attempts"] == 3 and len(receiver.on("/hang")) == 3
    letters = [h for h in dead_letters(running) if h.get(WEBHOOK_ID_HEADER) == doc["_id"]]
    assert len(letters) == 1
    assert letters[0][SERVICE] == "streams.webhooks"
    assert "after 3 attempts" in letters[0][ERROR_MESSAGE]


def test_410_disables_the_endpoint_for_the_story(running: RunningSystem, receiver: Receiver):
    receiver.script("/gone", [410])
    story_id = submit(running, receiver.url("/gone"), ["started", "completed"])

    def settled() -> bool:
        kinds = {d["kind"]: d["status"] for d in deliveries(running, story_id)}
        return kinds.get("completed") == "skipped" and kinds.get("started") == "failed"

    wait_for(settled, 240, "started to fail with 410 and completed to be skipped")
    assert len(receiver.on("/gone")) == 1


def test_a_host_resolving_to_loopback_at_delivery_time_is_refused(running: RunningSystem, receiver: Receiver):
    prefix = running.catalog.task_events.removesuffix("task.events")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": running.bootstrap,
        "MONGODB_URL": running.system.stack.mongodb_url,
        "MONGODB_DATABASE": running.db.name,
        "TOPIC_PREFIX": prefix,
        "WEBHOOK_RETRY_SCHEDULE": "0,300ms",
    }

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # what a hostile DNS answer turns a public name into

    service = WebhookService(WebhookSettings.from_env(Env(env)), resolve=loopback)
    url = f"http://hooks.example.com:{receiver.port}/refused"
    story_id = "s-refused-" + new_event_id()[:8]
    account = running.db["webhook_secrets"].find_one()["_id"]
    doc = {
        "_id": "msg_" + new_event_id(),
        "story_id": story_id,
        "account_id": account,
        "kind": "completed",
        "url": url,
        "body": "{}",
        "status": "pending",
        "attempts": 0,
        "next_at": 0,
        "lease_until": 0,
        "event_time": 0,
        "event": b"",
        "source": {"topic": running.catalog.task_events, "partition": 0, "offset": 0},
    }
    service.store.add([doc])

    async def attempt() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            await service.sender.attempt(client, doc)

    asyncio.run(attempt())
    (after,) = deliveries(running, story_id)
    assert after["status"] == "failed" and after["attempts"] == 1
    assert "127.0.0.1" in after["last_error"] and "loopback" in after["last_error"]
    assert receiver.on("/refused") == []
    letters = [h for h in dead_letters(running) if h.get(WEBHOOK_ID_HEADER) == doc["_id"]]
    assert len(letters) == 1 and "refused" in letters[0][ERROR_MESSAGE]
    service.producer.close()
    service.client.close()
