"""Webhook delivery: how many webhooks a second one delivery service sends, and how long after the event.

Starts one :class:`streams.webhook_service.WebhookService` (intake and sender) in a thread, on its own
topics and database on the local stack, and a loopback receiver (:mod:`ops.bench.webhook_receiver`).
Writes ``N`` stories into the job view by hand (``callback_url`` on the receiver, ``completed`` only) and
the account's signing secret, then produces one StoryCompleted per story to ``task.events`` as fast as
the producer takes them, each stamped with ``event_time`` just before it is produced. It waits until the
receiver got every webhook and reports:

* deliveries per second: ``N`` / (last arrival - first produce), and the sender's own rate,
  ``N`` / (last arrival - first arrival);
* latency from ``event_time`` to the arrival at the receiver (p50, p99, max), matched by the body's
  ``data.story_id``, split at the delivery document's ``created_at`` into the intake's part (event to
  document written) and the sender's (document to arrival).

A second round (``--no-retry-round`` skips it) has the receiver answer 500 to every webhook's first
attempt and 200 to its second (a path per story), with the retry schedule ``0,<--retry-delay>``
and no jitter: the latency is then to the successful attempt. A one-story warm-up before the rounds
lets the intake join its consumer group first::

    .venv/bin/python -u -m ops.bench.bench_webhooks --stories 500
    .venv/bin/python -u -m ops.bench.bench_webhooks --quick

Bounded: at most 5,000 stories and ``--timeout`` seconds (at most 600) a round. Everything created (the
database, the topics, the consumer group) is removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pymongo import MongoClient

from ops.bench.webhook_receiver import Receiver, serve_receiver
from ops.runtime.config import Env
from ops.runtime.kafka import DurableProducer, admin_client
from ops.runtime.provisioning import ensure_topics
from schemas.codec import Codec
from schemas.events import StoryCompleted
from schemas.ids import now_ms
from schemas.topics import TopicCatalog
from schemas.webhook_secrets import generate_secret, new_entry
from streams.webhook_service import WebhookService
from streams.webhook_settings import WebhookSettings

CODEC = Codec()
ACCOUNT = "acct-bench-webhooks"


def _stack() -> tuple[str, str]:
    from ops.stack import local_bootstrap_servers, local_mongodb_url

    return local_bootstrap_servers(), local_mongodb_url()


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _stories(db: Any, receiver: Receiver, label: str, count: int, scripted: bool) -> dict[str, str]:
    """``count`` stories of the job view with a callback on the receiver: story id -> its path."""
    ids = [f"wh-{label}-{uuid.uuid4().hex[:16]}" for _ in range(count)]
    paths = {story_id: (f"/retry/{story_id}" if scripted else "/hook") for story_id in ids}
    if scripted:
        for path in paths.values():
            receiver.script(path, [500, 200])
    base = {"account_id": ACCOUNT, "tier": "premium", "task_type": "text_to_video", "status": "running",
            "task_count": 1, "submitted_at": now_ms(), "webhook_events": []}  # fmt: skip
    db.stories.insert_many(
        [{"_id": story_id, **base, "callback_url": receiver.url(path)} for story_id, path in paths.items()]
    )
    return paths


def _arrivals(receiver: Receiver, wanted: set[str], nth: int) -> dict[str, float]:
    """Story id -> arrival (time.time()) of the ``nth`` request (1-based) the receiver got for it."""
    seen: dict[str, int] = {}
    found: dict[str, float] = {}
    for request in list(receiver.received):
        try:
            story_id = json.loads(request.body)["data"]["story_id"]
        except (ValueError, KeyError, TypeError):
            continue
        if story_id not in wanted:
            continue
        seen[story_id] = seen.get(story_id, 0) + 1
        if seen[story_id] == nth:
            found[story_id] = request.at
    return found


def _round(
    db: Any, receiver: Receiver, producer: DurableProducer, topic: str, label: str, count: int,
    scripted: bool, timeout_s: float,
) -> dict[str, Any]:  # fmt: skip
    paths = _stories(db, receiver, label, count, scripted)
    wanted = set(paths)
    nth = 2 if scripted else 1
    event_times: dict[str, int] = {}
    before = len(receiver.received)
    started = time.time()
    for story_id in paths:
        event = StoryCompleted(story_id=story_id, account_id=ACCOUNT, tasks_completed=1, tasks_failed=0,
                               tasks_expired=0, gpu_seconds=1.0)  # fmt: skip
        event_times[story_id] = event.event_time
        producer.produce(topic, CODEC.encode(event), key=story_id.encode())
    left = producer.flush(30)
    produced_s = time.time() - started
    deadline = time.monotonic() + timeout_s
    while len(receiver.received) - before < count * nth and time.monotonic() < deadline:
        time.sleep(0.05)  # counting only: parsing every body each turn would take CPU from the service
    arrivals = _arrivals(receiver, wanted, nth)
    requests = sum(_count_for(receiver, wanted).values())
    settle = time.monotonic() + 5  # the attempt is recorded just after the receiver answered
    while (
        db.webhook_deliveries.count_documents({"story_id": {"$in": list(wanted)}, "status": "delivered"})
        < len(arrivals)
        and time.monotonic() < settle
    ):
        time.sleep(0.1)
    docs = {d["story_id"]: d for d in db.webhook_deliveries.find(
        {"story_id": {"$in": list(wanted)}}, {"story_id": 1, "created_at": 1, "attempts": 1, "status": 1}
    )}  # fmt: skip
    latency = [arrivals[s] * 1000 - event_times[s] for s in arrivals]
    intake = [docs[s]["created_at"] - event_times[s] for s in arrivals if s in docs]
    sender = [arrivals[s] * 1000 - docs[s]["created_at"] for s in arrivals if s in docs]
    first, last = (min(arrivals.values()), max(arrivals.values())) if arrivals else (started, started)
    statuses: dict[str, int] = {}
    for doc in docs.values():
        statuses[doc["status"]] = statuses.get(doc["status"], 0) + 1
    return {
        "round": "500 then 200" if scripted else "200",
        "stories": count,
        "delivered": len(arrivals),
        "requests": requests,
        "unsent_at_flush": left,
        "produce_s": round(produced_s, 2),
        "span_s": round(last - started, 2),
        "per_s": round(len(arrivals) / (last - started), 1) if arrivals and last > started else None,
        "sender_per_s": round((len(arrivals) - 1) / (last - first), 1)
        if len(arrivals) > 1 and last > first
        else None,
        "p50_ms": _pct(latency, 0.5),
        "p99_ms": _pct(latency, 0.99),
        "max_ms": round(max(latency), 1) if latency else None,
        "intake_p50_ms": _pct(intake, 0.5),
        "intake_p99_ms": _pct(intake, 0.99),
        "sender_p50_ms": _pct(sender, 0.5),
        "sender_p99_ms": _pct(sender, 0.99),
        "statuses": statuses,
    }


def _count_for(receiver: Receiver, wanted: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in list(receiver.received):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            story_id = json.loads(request.body)["data"]["story_id"]
            if story_id in wanted:
                counts[story_id] = counts.get(story_id, 0) + 1
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.bench_webhooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--stories", type=int, default=500, help="webhooks a round (one story each)")
    parser.add_argument("--quick", action="store_true", help="50 stories a round")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a round may take")
    parser.add_argument("--concurrency", type=int, default=64, help="WEBHOOK_CONCURRENCY")
    parser.add_argument("--host-concurrency", type=int, default=8, help="WEBHOOK_HOST_CONCURRENCY")
    parser.add_argument("--retry-delay", default="500ms", help="the retry round's second delay")
    parser.add_argument("--no-retry-round", action="store_true", help="skip the 500-then-200 round")
    args = parser.parse_args(argv)
    count = 50 if args.quick else args.stories
    if not 1 <= count <= 5000 or not 0 < args.timeout <= 600:
        parser.error("bounded runs only: 1-5000 stories, at most 600 s a round")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    bootstrap, mongodb_url = _stack()
    run_id = uuid.uuid4().hex[:8]
    prefix, database = f"bench{run_id}.", f"bench_{run_id}"
    catalog = TopicCatalog.build(prefix=prefix)
    admin = admin_client(bootstrap)
    ensure_topics(admin, catalog)
    settings = WebhookSettings.from_env(Env({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MONGODB_URL": mongodb_url, "MONGODB_DATABASE": database,
        "TOPIC_PREFIX": prefix, "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_CONCURRENCY": str(args.concurrency),
        "WEBHOOK_HOST_CONCURRENCY": str(args.host_concurrency),
        "WEBHOOK_RETRY_SCHEDULE": f"0,{args.retry_delay}", "WEBHOOK_RETRY_JITTER": "0",
    }))  # fmt: skip
    mongo: MongoClient = MongoClient(mongodb_url)
    db = mongo[database]
    producer = DurableProducer(bootstrap)
    stop = threading.Event()
    rows: list[dict[str, Any]] = []
    service_thread: threading.Thread | None = None
    try:
        db.webhook_secrets.insert_one({"_id": ACCOUNT, "secrets": [new_entry(generate_secret(), now_ms())]})
        with serve_receiver() as receiver:
            service = WebhookService(settings)
            service_thread = threading.Thread(target=service.run, args=(stop,), name="webhooks", daemon=True)
            service_thread.start()
            warm = _round(db, receiver, producer, catalog.task_events, "warm", 1, False, 60)
            if not warm["delivered"]:
                raise RuntimeError("the warm-up webhook never arrived")
            rounds = [("plain", False)] + ([] if args.no_retry_round else [("retry", True)])
            for label, scripted in rounds:
                row = _round(
                    db, receiver, producer, catalog.task_events, label, count, scripted, args.timeout
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        stop.set()
        if service_thread is not None:
            service_thread.join(timeout=60)
        producer.close()
        mongo.drop_database(database)
        mongo.close()
        admin.delete_topics(list(catalog.names))
        with contextlib.suppress(Exception):
            for future in admin.delete_consumer_groups([settings.group]).values():
                future.result(10)
    print(f"# {platform.machine()} {platform.python_version()}, one delivery service (intake + sender "
          f"in one process), concurrency {args.concurrency}, per host {args.host_concurrency}")  # fmt: skip
    print("| round | delivered | requests | deliveries/s (from first produce) | sender's rate | p50 | p99 "
          "| max | intake p50 / p99 | sender p50 / p99 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['round']} | {r['delivered']}/{r['stories']} | {r['requests']} | {r['per_s']} "
              f"({r['span_s']} s) | {r['sender_per_s']}/s | {r['p50_ms']} ms | {r['p99_ms']} ms | "
              f"{r['max_ms']} ms | {r['intake_p50_ms']} / {r['intake_p99_ms']} ms | "
              f"{r['sender_p50_ms']} / {r['sender_p99_ms']} ms |")  # fmt: skip
    return 0 if all(r["delivered"] == r["stories"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
