"""Re-render requests: which batch records a request covers, how it ends, how members read it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gpu_consumers.rerender import (
    RerenderRequest,
    RerenderRequests,
    key_of,
    read_request,
    request_for,
    write_request,
)
from ops.runtime.storage import LocalStore
from schemas.records import Tier
from tests.gpu_consumers.executors import pending

GROUP = "t.gpu-consumers.tiny.premium"
TOPIC = "t.batches.tiny.premium"  # the topic ``executors.wrap`` puts its records on, at offset 7
NOW = 1_700_000_000_000


def _request(*windows: tuple[str, int, int, int], ttl_ms: int = 60_000) -> RerenderRequest:
    return request_for(GROUP, windows, now=NOW, ttl_ms=ttl_ms, reason="test")


def test_a_request_covers_exactly_the_offsets_of_its_windows() -> None:
    request = _request((TOPIC, 0, 3, 7), (TOPIC, 2, 10, 10))
    assert [request.covers(TOPIC, 0, offset, NOW) for offset in (2, 3, 7, 8)] == [False, True, True, False]
    assert request.covers(TOPIC, 2, 10, NOW) and not request.covers(TOPIC, 1, 5, NOW)
    assert not request.covers("t.batches.tiny.free", 0, 5, NOW)  # another tier's topic
    assert request.records == 6


def test_a_request_ends_at_its_ttl() -> None:
    request = _request((TOPIC, 0, 0, 9), ttl_ms=1000)
    assert request.covers(TOPIC, 0, 5, NOW + 999)
    assert not request.covers(TOPIC, 0, 5, NOW + 1000)


def test_an_empty_window_is_dropped_and_a_ttl_must_be_positive() -> None:
    assert _request((TOPIC, 0, 5, 4)).windows == ()
    with pytest.raises(ValueError, match="ttl_ms must be positive"):
        _request((TOPIC, 0, 0, 1), ttl_ms=0)


def test_a_stored_request_reads_back_and_a_missing_or_broken_one_is_no_request(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert read_request(store, GROUP) is None
    request = _request((TOPIC, 0, 3, 7))
    uri = write_request(store, request)
    assert uri.endswith(f"control/rerender/{GROUP}.json")
    assert read_request(store, GROUP) == request
    store.put_bytes(key_of(GROUP), b"{not json")
    assert read_request(store, GROUP) is None
    store.put_bytes(key_of(GROUP), json.dumps({"group": GROUP}).encode())
    assert read_request(store, GROUP) is None
    # A request stored under another group's name is not this group's.
    store.put_bytes(key_of(GROUP), json.dumps(dataclasses.replace(request, group="other").as_dict()).encode())
    assert read_request(store, GROUP) is None


def test_the_hook_says_true_for_a_covered_batch_record_of_its_tier_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    write_request(store, _request((TOPIC, 0, 5, 9)))
    hook = RerenderRequests(store, {Tier.PREMIUM: GROUP}, clock=lambda: NOW)
    item = pending(1)  # premium, TOPIC[0]@7
    task = item.batch.tasks[0]
    assert hook(item, task)
    assert not hook(dataclasses.replace(item, offset=10), task)
    assert not hook(dataclasses.replace(item, tier=Tier.FREE), task)  # no group named for free
    expired = RerenderRequests(store, {Tier.PREMIUM: GROUP}, clock=lambda: NOW + 60_000)
    assert not expired(item, task)


def test_the_hook_rereads_the_request_after_its_refresh(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    now = [0.0]
    hook = RerenderRequests(store, {Tier.PREMIUM: GROUP}, refresh_s=5, clock=lambda: NOW,
                            monotonic=lambda: now[0])  # fmt: skip
    item = pending(1)
    assert not hook(item, item.batch.tasks[0])
    write_request(store, _request((TOPIC, 0, 0, 9)))
    now[0] = 4.9
    assert not hook(item, item.batch.tasks[0])  # still the cached "no request"
    now[0] = 5.0
    assert hook(item, item.batch.tasks[0])
    write_request(store, _request())  # a later replay with nothing re-delivered clears it
    now[0] = 10.0
    assert not hook(item, item.batch.tasks[0])
