"""The materializer's cache of written documents: hits, misses, least-recently-used eviction."""

from __future__ import annotations

from streams.view_cache import ViewCache


def test_take_splits_known_stories_from_ones_to_read():
    cache = ViewCache(max_stories=10)
    cache.put("s1", {"_id": "s1"}, {"s1:0": {"_id": "s1:0"}})
    found, missing = cache.take(["s1", "s2"])
    assert list(found) == ["s1"] and found["s1"].tasks == {"s1:0": {"_id": "s1:0"}}
    assert missing == ["s2"]


def test_the_least_recently_used_story_goes_first():
    cache = ViewCache(max_stories=2)
    cache.put("s1", {"_id": "s1"}, {})
    cache.put("s2", {"_id": "s2"}, {})
    cache.take(["s1"])  # s1 is now the most recently used
    cache.put("s3", {"_id": "s3"}, {})
    found, missing = cache.take(["s1", "s2", "s3"])
    assert sorted(found) == ["s1", "s3"] and missing == ["s2"]
    assert len(cache) == 2


def test_evicted_and_cleared_stories_are_read_again():
    cache = ViewCache(max_stories=5)
    for story_id in ("s1", "s2", "s3"):
        cache.put(story_id, {"_id": story_id}, {})
    cache.evict(["s1", "unknown"])
    assert cache.take(["s1", "s2"])[1] == ["s1"]
    cache.clear()
    assert cache.take(["s2", "s3"])[1] == ["s2", "s3"]


def test_a_cache_of_size_zero_remembers_nothing():
    cache = ViewCache(max_stories=0)
    cache.put("s1", {"_id": "s1"}, {})
    assert cache.take(["s1"]) == ({}, ["s1"])
