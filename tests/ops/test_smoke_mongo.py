"""Smoke test: insert, upsert, index and find on the real MongoDB-wire server over TCP."""

from __future__ import annotations

import pytest
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import DuplicateKeyError

pytestmark = pytest.mark.integration


def test_insert_upsert_index_find(mongo_db):
    stories = mongo_db["stories"]
    stories.create_index([("account_id", ASCENDING), ("submitted_at", DESCENDING)])
    stories.create_index("idempotency_key", unique=True, sparse=True)

    stories.insert_many(
        [
            {"_id": f"s{i}", "account_id": "a" if i % 2 else "b", "submitted_at": i, "status": "queued"}
            for i in range(10)
        ]
    )
    stories.update_one({"_id": "s3"}, {"$set": {"status": "running"}, "$inc": {"version": 1}}, upsert=True)
    stories.update_one(
        {"_id": "s99"},
        {"$setOnInsert": {"account_id": "a", "submitted_at": 99}, "$set": {"status": "queued"}},
        upsert=True,
    )
    result = stories.bulk_write(
        [UpdateOne({"_id": f"s{i}"}, {"$max": {"version": 2}}, upsert=True) for i in (1, 3, 5)], ordered=False
    )
    assert result.modified_count + result.upserted_count == 3

    newest_of_a = list(stories.find({"account_id": "a"}).sort("submitted_at", DESCENDING).limit(3))
    assert [doc["_id"] for doc in newest_of_a] == ["s99", "s9", "s7"]
    assert stories.find_one({"_id": "s3"}) == {
        "_id": "s3",
        "account_id": "a",
        "submitted_at": 3,
        "status": "running",
        "version": 2,
    }
    assert stories.count_documents({}) == 11
    index_names = {index["name"] for index in stories.list_indexes()}
    assert "account_id_1_submitted_at_-1" in index_names

    stories.insert_one({"_id": "k1", "idempotency_key": "same"})
    with pytest.raises(DuplicateKeyError):
        stories.insert_one({"_id": "k2", "idempotency_key": "same"})
