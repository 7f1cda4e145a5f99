"""POST /v1/stories/{id}/retry: a failed story's failed and expired tasks requested again as its next run."""

from __future__ import annotations

import pytest

from schemas.contract import MAX_STORY_RETRIES
from schemas.events import TaskRequested
from schemas.ids import derived_event_id, now_ms
from schemas.records import GenerationParams
from tests.gateway.conftest import consume
from tests.gateway.factories import story_doc, task_doc

pytestmark = pytest.mark.integration

PARAMS = GenerationParams(
    width=64, height=64, num_frames=8, fps=8, num_inference_steps=2, guidance_scale=1.0, seed=7
)


def _failed_story(mongo_db, account_id: str, **story_fields) -> None:
    """s1: scene 0 completed, 1 failed for good, 2 expired; the first run had 60 s to start."""
    fields = {"status": "failed", "task_count": 3, "submitted_at": 1_000, "_seq": 6, **story_fields}
    mongo_db.stories.insert_one(story_doc("s1", account_id, **fields))
    common = {"params": PARAMS.to_record(), "input": None, "deadline": 61_000}
    mongo_db.tasks.insert_many([
        task_doc("s1", account_id, 0, status="completed", **common),
        task_doc("s1", account_id, 1, status="failed", attempt=3, **common),
        task_doc("s1", account_id, 2, status="expired", **common),
    ])  # fmt: skip


def test_retry_requests_the_failed_and_expired_tasks_as_the_next_run(
    gateway, mongo_db, kafka_bootstrap, catalog
):
    account = gateway.account()
    _failed_story(mongo_db, account.account_id)
    before = now_ms()
    response = gateway.client.post("/v1/stories/s1/retry", headers=gateway.headers(account))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["retry"] == 1 and body["task_ids"] == ["s1:1", "s1:2"] and body["status"] == "retrying"
    assert response.headers["location"] == "/v1/stories/s1"
    events = sorted(consume(kafka_bootstrap, catalog.tasks_requested), key=lambda e: e.task_id)
    assert [e.task_id for e in events] == ["s1:1", "s1:2"]
    for event in events:
        assert isinstance(event, TaskRequested)
        assert event.attempt == 10 and event.event_id == derived_event_id("TaskRequested", event.task_id, 10)
        assert (
            event.params == PARAMS and event.prompt == f"scene {event.scene_index}" and event.task_count == 3
        )
        assert event.account_id == account.account_id and event.sequence == 7
        assert before + 60_000 <= event.deadline <= now_ms() + 60_000  # as long as the first run had


def test_retry_takes_a_new_start_window(gateway, mongo_db, kafka_bootstrap, catalog):
    account = gateway.account()
    _failed_story(mongo_db, account.account_id)
    response = gateway.client.post(
        "/v1/stories/s1/retry", json={"start_within_s": 900}, headers=gateway.headers(account)
    )
    assert response.status_code == 202, response.text
    (first, *_) = consume(kafka_bootstrap, catalog.tasks_requested)
    assert first.deadline >= now_ms() + 890_000
    for bad in ({"start_within_s": 0}, {"other": 1}, [1]):
        refused = gateway.client.post("/v1/stories/s1/retry", json=bad, headers=gateway.headers(account))
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "start_within_s", bad


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"status": "running"}, "still running"),
        ({"status": "queued"}, "still queued"),
        ({"status": "completed"}, "nothing to retry"),
        ({"status": "cancelled"}, "submit it again"),
        ({"error": {"code": "empty_story", "message": "no scenes"}}, "before any task ran"),
        ({"retry": MAX_STORY_RETRIES}, f"retried {MAX_STORY_RETRIES} times"),
    ],
)
def test_retry_is_refused_with_the_reason(gateway, mongo_db, fields, says):
    account = gateway.account()
    _failed_story(mongo_db, account.account_id, **fields)
    response = gateway.client.post("/v1/stories/s1/retry", headers=gateway.headers(account))
    assert response.status_code == 409, response.text
    assert says in response.json()["error"]["message"]


def test_retry_of_tasks_stored_before_their_params_names_the_rebuild(gateway, mongo_db):
    account = gateway.account()
    _failed_story(mongo_db, account.account_id)
    mongo_db.tasks.update_many({}, {"$unset": {"params": ""}})
    response = gateway.client.post("/v1/stories/s1/retry", headers=gateway.headers(account))
    assert response.status_code == 409 and "storee view rebuild" in response.json()["error"]["message"]


def test_another_accounts_story_is_not_found(gateway, mongo_db):
    owner, other = gateway.account(), gateway.account()
    _failed_story(mongo_db, owner.account_id)
    response = gateway.client.post("/v1/stories/s1/retry", headers=gateway.headers(other))
    assert response.status_code == 404
