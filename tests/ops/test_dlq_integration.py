"""``storee dlq`` on the real broker: list and show real dead letters, replay once, refuse a second.

The processed-once scenario is the batcher's one refusal that a setting fixes: a TaskRequested for a
pool the worker does not serve (``GPU_POOLS``) is dead-lettered (UnknownPool); the worker is restarted
serving that pool, the letter is replayed, and the task lands in exactly one BatchReady.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ops import cli
from ops.bench.kafka_probe import TopicReader, delete_prefixed_topics, end_offsets, produce
from ops.bench.stream_worker import Worker, worker_env
from ops.dlq.letters import Letter
from ops.dlq.reader import DlqReader
from ops.runtime.kafka import DurableProducer, admin_client
from ops.runtime.provisioning import ensure_topics
from schemas.codec import Codec
from schemas.dlq import REPLAYED_FROM, dead_letter
from schemas.events import BatchReady, TaskRequested
from schemas.exceptions import CodecError
from schemas.ids import now_ms
from schemas.records import Tier
from schemas.topics import TopicCatalog
from streams.splitting import SplitPolicy, split
from tests.streams.factories import story

CODEC = Codec()


@pytest.fixture
def catalog(kafka_bootstrap: str, topic_prefix: str) -> Iterator[TopicCatalog]:
    built = TopicCatalog.build(prefix=topic_prefix, pools=("default", "extra"))
    ensure_topics(admin_client(kafka_bootstrap), built)
    yield built
    delete_prefixed_topics(kafka_bootstrap, topic_prefix)


@pytest.fixture
def storee(
    kafka_bootstrap: str, mongo_url: str, topic_prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> Callable[..., tuple[int, Any]]:
    """Run ``storee dlq ... --json`` in-process; return its exit status and its parsed output."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("MONGODB_URL", mongo_url)
    monkeypatch.setenv("TOPIC_PREFIX", topic_prefix)

    def run(*argv: str) -> tuple[int, Any]:
        capsys.readouterr()
        status = cli.main(["dlq", *argv, "--json"])
        out = capsys.readouterr().out
        return status, json.loads(out) if out.strip() else None

    return run


def _task(story_id: str, model: str) -> TaskRequested:
    now = now_ms()
    submitted = story(story_id, n_scenes=1, model=model, event_time=now, submitted_at=now)
    return split(submitted, SplitPolicy(task_ttl_ms=600_000))[0]


def _write_letters(bootstrap: str, catalog: TopicCatalog) -> TaskRequested:
    """Two real dead letters (a decodable task refused, garbage bytes), as the services write them."""
    task = _task("story-dlq-a", "default")
    good = dead_letter(
        topic=catalog.tasks_requested, partition=3, offset=7, key=b"story-dlq-a", value=CODEC.encode(task),
        headers=[("traceparent", b"00-abc")], error=CodecError("pool 'x' is not served"),
        service="streams.batcher",
    )  # fmt: skip
    garbage = dead_letter(
        topic=catalog.stories_submitted, partition=0, offset=2, key=b"k", value=b"\xff\x00not avro",
        headers=None, error=CodecError("wrong marker"), service="streams.splitter",
    )  # fmt: skip
    producer = DurableProducer(bootstrap)
    try:
        for record in (good, garbage):
            producer.produce_sync(catalog.dlq, record.value or b"", key=record.key, headers=record.headers)
    finally:
        producer.close()
    return task


def _records(bootstrap: str, topic: str) -> list[Any]:
    reader = TopicReader(bootstrap, [topic], f"dlq-test-{now_ms()}")
    try:
        return reader.read_to_end(30)
    finally:
        reader.close()


def test_list_show_and_a_replay_that_happens_once(
    kafka_bootstrap: str, catalog: TopicCatalog, storee
) -> None:
    task = _write_letters(kafka_bootstrap, catalog)

    status, listed = storee("list")
    assert status == 0
    rows = listed["letters"]
    assert sorted((r["service"], r["origin"], r["key"]) for r in rows) == [
        ("streams.batcher", f"{catalog.tasks_requested}[3]@7", "story-dlq-a"),
        ("streams.splitter", f"{catalog.stories_submitted}[0]@2", "k"),
    ]
    by_key = {r["key"]: r for r in rows}
    assert storee("list", "--topic", "stories.submitted")[1]["letters"] == [by_key["k"]]
    assert storee("list", "--service", "batcher", "--reason", "not served")[1]["letters"] == [
        by_key["story-dlq-a"]
    ]
    assert storee("list", "--since", "1h")[1]["letters"] and not storee("list", "--until", "1h")[1]["letters"]

    good_id, garbage_id = by_key["story-dlq-a"]["id"], by_key["k"]["id"]
    status, shown = storee("show", good_id)
    assert status == 0 and shown["event"]["type"] == "TaskRequested"
    assert shown["names"] == {
        "story_id": "story-dlq-a",
        "task_id": task.task_id,
        "account_id": task.account_id,
    }
    assert {h["name"] for h in shown["headers"]} >= {
        "traceparent",
        "storee.dlq.origin.topic",
        "storee.dlq.service",
    }
    status, odd = storee("show", garbage_id)
    assert odd["event"] is None and odd["preview"]["hex"].startswith("ff00")

    # A dry run changes nothing.
    before = end_offsets(kafka_bootstrap, [catalog.tasks_requested, catalog.dlq])
    status, plan = storee("replay", good_id)
    assert status == 0 and [s["verdict"] for s in plan["steps"]] == ["replay"] and "replayed" not in plan
    assert end_offsets(kafka_bootstrap, [catalog.tasks_requested, catalog.dlq]) == before

    status, done = storee("replay", good_id, "--execute")
    assert status == 0 and [r["id"] for r in done["replayed"]] == [good_id]
    (back,) = _records(kafka_bootstrap, catalog.tasks_requested)
    assert back.key() == b"story-dlq-a" and CODEC.decode(back.value()) == task
    headers = dict(back.headers())
    assert headers[REPLAYED_FROM] == good_id.encode() and headers["traceparent"] == b"00-abc"
    assert not any(name.startswith("storee.dlq.") for name in headers)

    # Never twice by accident: refused (exit 2) and nothing produced; list shows the replay.
    status, again = storee("replay", good_id, "--execute")
    assert status == 2 and again["steps"][0]["verdict"] == "already replayed" and "replayed" not in again
    assert len(_records(kafka_bootstrap, catalog.tasks_requested)) == 1
    listed_after = {r["id"]: r for r in storee("list")[1]["letters"]}
    assert set(listed_after) == {good_id, garbage_id}  # the marker is not listed as a letter
    assert listed_after[good_id]["replays"][0]["to"].startswith(catalog.tasks_requested)
    assert storee("show", "0:999")[0] == 1  # not found: one clear line, exit 1


def _wait_for(condition: Callable[[], Any], timeout: float, what: str, worker: Worker) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)  # polling a condition with a deadline, not synchronising on time
    raise AssertionError(f"{what} within {timeout:.0f}s; worker log:\n{worker.log_tail()}")


def test_a_letter_replayed_after_its_cause_is_fixed_is_processed_once(
    kafka_bootstrap: str, mongo_url: str, topic_prefix: str, catalog: TopicCatalog, tmp_path: Path, storee
) -> None:
    task = _task("story-dlq-pool", "extra")
    database = f"t_{topic_prefix[1:-1]}"

    def worker(pools: str, name: str) -> Worker:
        env = worker_env(
            kafka_bootstrap, mongo_url, database, topic_prefix, tmp_path / "data", GPU_POOLS=pools
        )
        return Worker(env, tmp_path / f"{name}.log").start()

    def letters() -> list[Letter]:
        reader = DlqReader(kafka_bootstrap, catalog.dlq)
        try:
            return reader.scan()[0]
        finally:
            reader.close()

    tight = worker("default", "tight")
    try:
        produce(kafka_bootstrap, catalog.tasks_requested, [task])
        (letter,) = _wait_for(letters, 45, "no dead letter for the unknown pool", tight)
    finally:
        tight.stop()
    assert letter.reason is not None and letter.reason.error_class.endswith("UnknownPool")

    fixed = worker("default,extra", "fixed")
    batches = TopicReader(kafka_bootstrap, [catalog.batches("extra", Tier.PREMIUM)], f"dlq-b-{now_ms()}")
    try:
        status, done = storee("replay", str(letter.id), "--execute")
        assert status == 0 and len(done["replayed"]) == 1

        def carried() -> list[BatchReady]:
            batches.poll()
            return [b for b in batches.events(BatchReady) if task.task_id in {t.task_id for t in b.tasks}]

        _wait_for(carried, 45, "the replayed task was not batched", fixed)
        assert storee("replay", str(letter.id), "--execute")[0] == 2  # a second replay is refused
        assert len(_records(kafka_bootstrap, catalog.tasks_requested)) == 2  # the original and one replay
        batches.read_to_end(30)
        assert len(carried()) == 1
        assert len(letters()) == 1  # the replay did not fail again
    finally:
        batches.close()
        fixed.stop()
