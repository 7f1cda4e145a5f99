"""API keys and tenant isolation: no key or a wrong one is 401; another account's work is 404."""

from __future__ import annotations

import pytest

from gateway.accounts import hash_key
from schemas.view import API_KEYS
from tests.gateway.conftest import consume
from tests.gateway.factories import clip, story_doc, task_doc

pytestmark = pytest.mark.integration


def test_missing_or_wrong_key_is_401(gateway):
    account = gateway.account()
    for headers in (
        {},
        {"Authorization": "Bearer sk_wrong"},
        {"Authorization": "Basic abc"},
        {"X-API-Key": account.api_key + "x"},
        {"Authorization": "Bearer "},
    ):
        response = gateway.client.get("/v1/stories", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert gateway.client.post("/v1/stories", json={"story_text": "x"}).status_code == 401


def test_bearer_and_x_api_key_both_work(gateway):
    account = gateway.account()
    assert (
        gateway.client.get("/v1/stories", headers={"Authorization": f"Bearer {account.api_key}"}).status_code
        == 200
    )
    assert gateway.client.get("/v1/stories", headers={"X-API-Key": account.api_key}).status_code == 200


def test_keys_are_stored_hashed(gateway, mongo_db):
    account = gateway.account()
    (stored,) = list(mongo_db[API_KEYS].find({"account_id": account.account_id}))
    assert stored["_id"] == hash_key(account.api_key)
    assert account.api_key not in str(stored)


def test_account_a_cannot_read_list_download_or_cancel_bs_work(gateway, mongo_db, kafka_bootstrap, catalog):
    alice, bob = gateway.account(), gateway.account()
    out = clip(gateway.settings.output_dir, "bob-story", 0, b"bob's clip")
    mongo_db.stories.insert_one(
        story_doc(
            "bob-story",
            bob.account_id,
            status="running",
            outputs=[
                {"task_id": "bob-story:0", "scene_index": 0, "uri": out["uri"], "media_type": "video/mp4"}
            ],
        )
    )
    mongo_db.tasks.insert_one(task_doc("bob-story", bob.account_id, 0, status="completed", outputs=[out]))
    as_alice = gateway.headers(alice)
    for path in (
        "/v1/stories/bob-story",
        "/v1/tasks/bob-story:0",
        "/v1/stories/bob-story/result",
        "/v1/tasks/bob-story:0/result",
    ):
        response = gateway.client.get(path, headers=as_alice)
        assert response.status_code == 404, path
        assert b"bob's clip" not in response.content
    assert gateway.client.post("/v1/stories/bob-story/cancel", headers=as_alice).status_code == 404
    assert gateway.client.get("/v1/stories", headers=as_alice).json()["stories"] == []
    # Bob himself sees and downloads it all, and nothing was cancelled for Alice.
    as_bob = gateway.headers(bob)
    assert [s["story_id"] for s in gateway.client.get("/v1/stories", headers=as_bob).json()["stories"]] == [
        "bob-story"
    ]
    assert gateway.client.get("/v1/tasks/bob-story:0/result", headers=as_bob).content == b"bob's clip"
    assert consume(kafka_bootstrap, catalog.task_events) == []


def test_a_revoked_key_stops_working_once_the_cache_expires(make_gateway, catalog, mongo_db):
    gateway = make_gateway(api_key_cache_ttl_s=0.0)
    account = gateway.account()
    assert gateway.client.get("/v1/stories", headers=gateway.headers(account)).status_code == 200
    mongo_db[API_KEYS].update_one({"_id": hash_key(account.api_key)}, {"$set": {"revoked": True}})
    assert gateway.client.get("/v1/stories", headers=gateway.headers(account)).status_code == 401
