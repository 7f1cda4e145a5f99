"""Our fixes to FerretDB 1.24: applied exactly or not at all, and, on the running server, in effect."""

from __future__ import annotations

import pytest
from pymongo import MongoClient, UpdateOne
from pymongo.database import Database

from ops.stack.exceptions import StackError
from ops.stack.ferretdb_patches import PATCHES, apply_patches, patch_tag


def _source_tree(root, version: str = "v1.24.0") -> None:  # type: ignore[no-untyped-def]
    """Files holding exactly the texts the patches replace, as the real module does."""
    texts: dict[str, str] = {}
    for patch in PATCHES[version]:
        texts[patch.path] = texts.get(patch.path, "package x\n") + "\n".join([patch.old] * patch.count) + "\n"
    for path, text in texts.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def test_every_fix_replaces_its_text(tmp_path):
    _source_tree(tmp_path)
    assert apply_patches(tmp_path, "v1.24.0") == len(PATCHES["v1.24.0"])
    for patch in PATCHES["v1.24.0"]:
        text = (tmp_path / patch.path).read_text()
        assert patch.new in text
        assert patch.old not in text or patch.old in patch.new


def test_a_source_that_does_not_match_fails_the_build_naming_the_file(tmp_path):
    _source_tree(tmp_path)
    target = tmp_path / "internal/backends/sqlite/metadata/metadata.go"
    target.write_text("package metadata\n")
    with pytest.raises(StackError, match="metadata.go has the text to replace 0 times"):
        apply_patches(tmp_path, "v1.24.0")


def test_other_versions_are_built_as_published(tmp_path):
    assert patch_tag("v1.23.1") == "" and apply_patches(tmp_path, "v1.23.1") == 0
    assert patch_tag("v1.24.0").startswith("-storee.") and patch_tag("v1.24.0") == patch_tag("v1.24.0")


def _is_ferretdb(db: Database) -> bool:
    return "ferretdbVersion" in db.client.admin.command("buildInfo")


@pytest.mark.integration
def test_lookups_by_id_use_the_index_and_return_what_the_filter_says(mongo_db: Database):
    docs = mongo_db["docs"]
    docs.insert_many([{"_id": f"d{i}", "n": i, "rev": "a"} for i in range(300)])
    filters = [{"_id": "d7"}, {"_id": "d7", "rev": "a"}, {"_id": {"$in": ["d1", "d2", "nope"]}}]
    if _is_ferretdb(mongo_db):
        for query in filters:
            plan = mongo_db.command("explain", {"find": "docs", "filter": query})["queryPlanner"]["Plan"]
            assert any("USING INDEX" in step for step in plan), (query, plan)
    # Pushed down or not, the rest of the filter still applies.
    assert docs.find_one({"_id": "d7", "rev": "b"}) is None
    found = docs.find({"_id": {"$in": ["d1", "d2", "nope"]}, "n": {"$gt": 1}})
    assert [doc["_id"] for doc in found] == ["d2"]
    assert docs.count_documents({"_id": {"$in": ["d3", 5]}}) == 1
    assert docs.update_one({"_id": "d8", "rev": "b"}, {"$set": {"n": -1}}).matched_count == 0
    assert docs.update_one({"_id": "d8", "rev": "a"}, {"$set": {"n": -1}}).modified_count == 1
    assert docs.delete_many({"_id": {"$in": ["d9", "d10"]}}).deleted_count == 2
    assert docs.count_documents({}) == 298


@pytest.mark.integration
def test_an_update_command_of_many_updates_finishes(mongo_url: str, mongo_db: Database):
    # Unpatched, FerretDB 1.24 never answers an update command of 100 or more updates.
    docs = mongo_db["many"]
    docs.insert_many([{"_id": f"m{i}", "n": 0} for i in range(250)])
    short: MongoClient = MongoClient(mongo_url, socketTimeoutMS=30_000)  # a hang fails, not stalls, the run
    try:
        result = short[mongo_db.name]["many"].bulk_write(
            [UpdateOne({"_id": f"m{i}"}, {"$set": {"n": 1}}) for i in range(250)], ordered=False
        )
        assert result.modified_count == 250
    finally:
        short.close()
    assert docs.count_documents({"n": 1}) == 250
