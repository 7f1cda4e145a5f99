"""Submissions end up on ``stories.submitted`` as decodable events, once per Idempotency-Key."""

from __future__ import annotations

import pytest

from schemas.events import StorySubmitted
from schemas.ids import now_ms
from schemas.records import TaskType, Tier
from tests.gateway.conftest import consume

pytestmark = pytest.mark.integration


def test_story_with_scenes_is_published_and_decodable(gateway, kafka_bootstrap, catalog):
    account = gateway.account(Tier.FREE)
    before = now_ms()
    response = gateway.client.post(
        "/v1/stories",
        headers=gateway.headers(account),
        json={
            "title": "Fox at dawn",
            "scenes": [{"prompt": "a fox in snow"}, {"prompt": "the fox runs into the woods"}],
            "params": {"width": 256, "height": 128, "num_frames": 9, "seed": 7},
            "start_within_s": 600,
        },
    )
    assert response.status_code == 202, response.text
    body = response.json()
    story_id = body["story_id"]
    assert body["status"] == "queued"
    assert body["links"]["self"] == f"/v1/stories/{story_id}"
    assert response.headers["location"] == body["links"]["self"]
    (event,) = consume(kafka_bootstrap, catalog.stories_submitted)
    assert isinstance(event, StorySubmitted)
    assert event.story_id == story_id
    assert event.account_id == account.account_id
    assert event.tier == Tier.FREE
    assert event.task_type == TaskType.TEXT_TO_VIDEO
    assert event.model == "default"
    assert [s.prompt for s in event.scenes] == ["a fox in snow", "the fox runs into the woods"]
    assert [s.index for s in event.scenes] == [0, 1]
    assert event.params.width == 256 and event.params.num_frames == 9 and event.params.seed == 7
    assert event.params.fps == 8  # a default filled in
    assert event.story_text is None and event.idempotency_key is None
    assert before <= event.submitted_at <= now_ms()
    assert event.deadline == event.submitted_at + 600_000


def test_story_text_is_left_to_the_splitter_and_deadline_defaults_to_task_ttl(
    gateway, kafka_bootstrap, catalog
):
    account = gateway.account()
    text = "Once upon a time a fox lived in the woods. One day it snowed."
    response = gateway.client.post("/v1/stories", headers=gateway.headers(account), json={"story_text": text})
    assert response.status_code == 202, response.text
    (event,) = consume(kafka_bootstrap, catalog.stories_submitted)
    assert event.story_text == text and event.scenes == ()
    assert event.tier == Tier.PREMIUM
    assert event.deadline == event.submitted_at + gateway.settings.task_ttl_s * 1000


def test_idempotent_retry_returns_the_same_story_and_publishes_once(gateway, kafka_bootstrap, catalog):
    account = gateway.account()
    headers = gateway.headers(account, **{"Idempotency-Key": "order-42"})
    body = {"scenes": [{"prompt": "a lighthouse in a storm"}]}
    first = gateway.client.post("/v1/stories", headers=headers, json=body)
    second = gateway.client.post("/v1/stories", headers=headers, json=body)
    assert first.status_code == second.status_code == 202
    assert first.json()["story_id"] == second.json()["story_id"]
    assert second.headers["idempotent-replayed"] == "true"
    # Another account with the same key is another story.
    other = gateway.account()
    third = gateway.client.post(
        "/v1/stories", headers=gateway.headers(other, **{"Idempotency-Key": "order-42"}), json=body
    )
    assert third.status_code == 202 and third.json()["story_id"] != first.json()["story_id"]
    events = consume(kafka_bootstrap, catalog.stories_submitted)
    assert [e.story_id for e in events] == [first.json()["story_id"], third.json()["story_id"]]
    assert events[0].idempotency_key == "order-42"


def test_idempotency_key_reused_with_another_body_is_a_conflict(gateway, kafka_bootstrap, catalog):
    account = gateway.account()
    headers = gateway.headers(account, **{"Idempotency-Key": "k1"})
    assert gateway.client.post("/v1/stories", headers=headers, json={"story_text": "one"}).status_code == 202
    response = gateway.client.post("/v1/stories", headers=headers, json={"story_text": "two"})
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "conflict",
        "message": "this Idempotency-Key was used with a different request",
        "field": "Idempotency-Key",
    }
    assert len(consume(kafka_bootstrap, catalog.stories_submitted)) == 1


# Pools whose pipelines run the task types the default pool (text_to_video) does not.
POOLS = {
    "default": frozenset({TaskType.TEXT_TO_VIDEO}),
    "voice": frozenset({TaskType.TEXT_TO_AUDIO}),
    "i2v": frozenset({TaskType.IMAGE_TO_VIDEO}),
}


def test_job_is_a_one_scene_story(make_gateway, kafka_bootstrap, catalog):
    gateway = make_gateway(pool_capabilities=POOLS)
    account = gateway.account()
    response = gateway.client.post(
        "/v1/jobs",
        headers=gateway.headers(account),
        json={
            "prompt": "rain on a tin roof",
            "task_type": "text_to_audio",
            "model": "voice",
            "params": {"audio_length_s": 4.5},
        },
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["task_id"] == f"{body['story_id']}:0"
    assert body["links"]["task"] == f"/v1/tasks/{body['story_id']}:0"
    (event,) = consume(kafka_bootstrap, catalog.stories_submitted)
    assert event.task_type == TaskType.TEXT_TO_AUDIO and event.model == "voice"
    assert [s.prompt for s in event.scenes] == ["rain on a tin roof"]
    assert event.params.audio_length_s == 4.5 and event.params.width == 0


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_image_upload_is_stored_and_referenced_by_uri(make_gateway, kafka_bootstrap, catalog):
    gateway = make_gateway(pool_capabilities=POOLS)
    account = gateway.account()
    response = gateway.client.post(
        "/v1/jobs",
        headers=gateway.headers(account),
        data={
            "prompt": "the cat turns its head",
            "model": "i2v",
            "params": '{"num_frames": 17}',
            "start_within_s": "120",
        },
        files={"image": ("cat.png", PNG, "image/png")},
    )
    assert response.status_code == 202, response.text
    (event,) = consume(kafka_bootstrap, catalog.stories_submitted)
    assert event.task_type == TaskType.IMAGE_TO_VIDEO and event.model == "i2v"
    assert event.params.num_frames == 17
    assert event.input is not None and event.input.media_type == "image/png"
    stored = gateway.client.app.state.gateway.store.local_path(event.input.uri)
    assert stored.read_bytes() == PNG
    assert stored.is_relative_to(gateway.settings.output_dir.resolve())
    assert event.deadline == event.submitted_at + 120_000


def test_work_no_configured_pool_runs_is_refused_and_publishes_nothing(gateway, kafka_bootstrap, catalog):
    """Only the default pool (text_to_video): audio and image-to-video would stay queued forever."""
    headers = gateway.headers(gateway.account())
    post = gateway.client.post
    audio_story = post(
        "/v1/stories", headers=headers, json={"story_text": "waves", "task_type": "text_to_audio"}
    )
    audio_job = post("/v1/jobs", headers=headers, json={"prompt": "rain", "task_type": "text_to_audio"})
    image_job = post(
        "/v1/jobs", headers=headers, data={"prompt": "it moves"}, files={"image": ("a.png", PNG, "image/png")}
    )
    for response, task_type in (
        (audio_story, "text_to_audio"),
        (audio_job, "text_to_audio"),
        (image_job, "image_to_video"),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["error"] == {
            "code": "invalid",
            "message": f"pool 'default' runs text_to_video; {task_type} needs a pool whose pipeline is "
            f"{task_type} (no configured pool runs it)",
            "field": "task_type",
        }
    unknown = post(
        "/v1/jobs",
        headers=headers,
        data={"prompt": "p", "model": "wan"},
        files={"image": ("a.png", PNG, "image/png")},
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "model"
    assert unknown.json()["error"]["message"] == "no pool named 'wan'; pools: default"
    assert consume(kafka_bootstrap, catalog.stories_submitted) == []
    # Nothing of the refused upload stays behind.
    assert not (gateway.settings.output_dir / "uploads").exists()


def test_the_pool_named_must_run_the_task_type(make_gateway, kafka_bootstrap, catalog):
    gateway = make_gateway(pool_capabilities=POOLS)
    headers = gateway.headers(gateway.account())
    wrong = gateway.client.post(
        "/v1/jobs", headers=headers, json={"prompt": "rain", "task_type": "text_to_audio", "model": "i2v"}
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "task_type"
    assert wrong.json()["error"]["message"] == (
        "pool 'i2v' runs image_to_video; text_to_audio needs a pool whose pipeline is text_to_audio "
        "(pools that run it: voice)"
    )
    story = gateway.client.post(
        "/v1/stories", headers=headers, json={"story_text": "a fox", "model": "voice"}
    )
    assert story.status_code == 422 and story.json()["error"]["field"] == "task_type"
    assert consume(kafka_bootstrap, catalog.stories_submitted) == []


def test_start_within_s_sets_the_deadline_up_to_max_task_ttl(make_gateway, kafka_bootstrap, catalog):
    gateway = make_gateway(max_task_ttl_s=3600, pool_capabilities=POOLS)
    headers = gateway.headers(gateway.account())
    over = gateway.client.post(
        "/v1/stories", headers=headers, json={"story_text": "s", "start_within_s": 3601}
    )
    assert over.status_code == 422 and over.json()["error"]["field"] == "start_within_s"
    form = gateway.client.post(
        "/v1/jobs",
        headers=headers,
        data={"prompt": "p", "model": "i2v", "start_within_s": "3601"},
        files={"image": ("a.png", PNG, "image/png")},
    )
    assert form.status_code == 422 and form.json()["error"]["field"] == "start_within_s"
    at_cap = gateway.client.post(
        "/v1/stories", headers=headers, json={"story_text": "s", "start_within_s": 3600}
    )
    assert at_cap.status_code == 202, at_cap.text
    (event,) = consume(kafka_bootstrap, catalog.stories_submitted)
    assert event.deadline == event.submitted_at + 3_600_000


def test_cancel_publishes_story_cancelled(gateway, kafka_bootstrap, catalog, mongo_db):
    account = gateway.account()
    mongo_db.stories.insert_one(
        {"_id": "s1", "account_id": account.account_id, "status": "running", "submitted_at": now_ms()}
    )
    response = gateway.client.post(
        "/v1/stories/s1/cancel", headers=gateway.headers(account), json={"reason": "changed my mind"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelling"
    (event,) = consume(kafka_bootstrap, catalog.task_events)
    assert event.story_id == "s1" and event.account_id == account.account_id
    assert event.reason == "changed my mind"
    mongo_db.stories.update_one({"_id": "s1"}, {"$set": {"status": "completed"}})
    again = gateway.client.post("/v1/stories/s1/cancel", headers=gateway.headers(account))
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_ready"


HOOK_URL = "http://127.0.0.1:9/hook"


def test_webhook_events_are_carried_into_the_event(make_gateway, kafka_bootstrap, catalog):
    gateway = make_gateway(webhook_allow_private=True, pool_capabilities=POOLS)
    account = gateway.account()
    story = {
        "scenes": [{"prompt": "a fox"}],
        "webhook_url": HOOK_URL,
        "webhook_events": ["completed", "started"],
    }
    plain = {"prompt": "a fox", "webhook_url": HOOK_URL}
    form = {"prompt": "a cat", "model": "i2v", "webhook_url": HOOK_URL, "webhook_events": "progress, started"}
    answers = [
        gateway.client.post("/v1/stories", headers=gateway.headers(account), json=story),
        gateway.client.post("/v1/jobs", headers=gateway.headers(account), json=plain),
        gateway.client.post(
            "/v1/jobs",
            headers=gateway.headers(account),
            data=form,
            files={"image": ("c.png", PNG, "image/png")},
        ),
    ]
    assert [answer.status_code for answer in answers] == [202, 202, 202], [a.text for a in answers]
    events = {event.story_id: event for event in consume(kafka_bootstrap, catalog.stories_submitted)}
    published = [events[answer.json()["story_id"]] for answer in answers]
    assert [event.webhook_events for event in published] == [
        ("started", "completed"),
        (),
        ("started", "progress"),
    ]
    assert all(event.callback_url == HOOK_URL for event in published)


def test_a_bad_or_urlless_filter_is_422_and_publishes_nothing(make_gateway, kafka_bootstrap, catalog):
    gateway = make_gateway(webhook_allow_private=True, pool_capabilities=POOLS)
    account = gateway.account()
    bodies = [
        ("/v1/stories", {"scenes": [{"prompt": "a"}], "webhook_url": HOOK_URL, "webhook_events": ["done"]}),
        ("/v1/stories", {"scenes": [{"prompt": "a"}], "webhook_events": ["completed"]}),
        ("/v1/jobs", {"prompt": "a", "webhook_url": HOOK_URL, "webhook_events": ["started", "ended"]}),
    ]
    for path, body in bodies:
        answer = gateway.client.post(path, headers=gateway.headers(account), json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"] == "webhook_events"
    form = {"prompt": "a", "model": "i2v", "webhook_url": HOOK_URL, "webhook_events": "started,ended"}
    answer = gateway.client.post(
        "/v1/jobs", headers=gateway.headers(account), data=form, files={"image": ("c.png", PNG, "image/png")}
    )
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "webhook_events"
    assert "unknown webhook events ended" in answer.json()["error"]["message"]
    assert consume(kafka_bootstrap, catalog.stories_submitted) == []
