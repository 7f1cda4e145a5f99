"""A story's webhook as its GET shows it: URL, filter, and the status drawn from its deliveries."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.representation import webhook_body
from tests.gateway.factories import story_doc

URL = "https://example.com/hook"


def delivery(status: str, attempts: int = 1, updated_at: int = 1_000, **fields: Any) -> dict[str, Any]:
    return {"status": status, "attempts": attempts, "last_error": None, "updated_at": updated_at, **fields}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "pending"),
        (["delivered"], "delivered"),
        (["delivered", "pending"], "pending"),
        (["delivered", "pending", "failing"], "failing"),
        (["failing", "failed", "delivered"], "failed"),
        (["skipped"], "pending"),
        (["skipped", "delivered"], "delivered"),
    ],
)
def test_the_status_is_the_worst_of_the_deliveries(statuses, expected):
    doc = story_doc("s", "a", callback_url=URL)
    body = webhook_body(doc, [delivery(status) for status in statuses])
    assert body is not None and body["status"] == expected
    assert body["deliveries"] == len([s for s in statuses if s != "skipped"])


def test_no_webhook_without_a_url():
    assert webhook_body(story_doc("s", "a"), [delivery("delivered")]) is None


def test_the_filter_defaults_to_completed_and_keeps_event_order():
    assert webhook_body(story_doc("s", "a", callback_url=URL), [])["events"] == ["completed"]
    doc = story_doc("s", "a", callback_url=URL, webhook_events=["completed", "started"])
    assert webhook_body(doc, [])["events"] == ["started", "completed"]


def test_the_last_error_and_attempt_are_the_latest_ones():
    deliveries = [
        delivery("failing", updated_at=3_000, last_error="HTTP 500"),
        delivery("delivered", updated_at=5_000),
        delivery("failed", updated_at=4_000, last_error="timed out"),
        delivery("pending", attempts=0, updated_at=9_000),  # not tried yet: no attempt
    ]
    body = webhook_body(story_doc("s", "a", callback_url=URL), deliveries)
    assert body == {
        "url": URL,
        "events": ["completed"],
        "status": "failed",
        "deliveries": 4,
        "last_error": "timed out",
        "last_attempt_at": 5_000,
    }
    fresh = webhook_body(story_doc("s", "a", callback_url=URL), [delivery("pending", attempts=0)])
    assert (fresh["last_error"], fresh["last_attempt_at"]) == (None, None)


@pytest.mark.integration
def test_the_story_get_shows_only_its_own_deliveries(gateway, mongo_db):
    account, other = gateway.account(), gateway.account()
    me = account.account_id
    mongo_db.stories.insert_many(
        [
            story_doc("hooked", me, callback_url=URL, webhook_events=["started", "completed"]),
            story_doc("plain", me),
        ]
    )

    def row(webhook_id: str, story_id: str, account_id: str, status: str, **fields: Any) -> dict[str, Any]:
        return {
            "_id": webhook_id,
            "story_id": story_id,
            "account_id": account_id,
            "kind": "started",
            "url": URL,
            "body": '{"secret": "not for the GET"}',
            "next_at": None,
            "lease_until": None,
            "last_status": 500,
            "created_at": 1_000,
            "delivered_at": None,
            **delivery(status, **fields),
        }

    def webhook(story_id: str) -> Any:
        answer = gateway.client.get(f"/v1/stories/{story_id}", headers=gateway.headers(account))
        assert answer.status_code == 200, answer.text
        return answer.json()["webhook"]

    assert webhook("hooked") == {
        "url": URL,
        "events": ["started", "completed"],
        "status": "pending",
        "deliveries": 0,
        "last_error": None,
        "last_attempt_at": None,
    }
    mongo_db.webhook_deliveries.insert_many(
        [
            row("msg_1", "hooked", me, "delivered", updated_at=2_000),
            row("msg_2", "hooked", me, "failing", updated_at=3_000, last_error="HTTP 500"),
            # The same story id under another account (and another story) is not this story's.
            row("msg_3", "hooked", other.account_id, "failed", updated_at=4_000, last_error="no"),
            row("msg_4", "plain", me, "failed", updated_at=5_000, last_error="no"),
        ]
    )
    shown = webhook("hooked")
    assert (shown["status"], shown["deliveries"]) == ("failing", 2)
    assert (shown["last_error"], shown["last_attempt_at"]) == ("HTTP 500", 3_000)
    assert webhook("plain") is None
    mongo_db.webhook_deliveries.update_one(
        {"_id": "msg_2"}, {"$set": {"status": "delivered", "updated_at": 6_000}}
    )
    assert webhook("hooked")["status"] == "delivered"
