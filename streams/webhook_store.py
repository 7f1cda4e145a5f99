"""The webhook delivery service's MongoDB I/O: targets from the job view, delivery documents, secrets.

A delivery document (``webhook_deliveries``, shape in :mod:`schemas.view`) is written once by the
intake, ``_id`` = the webhook id, so a replayed event finds its delivery already there and adds
nothing. The sender claims a due delivery by moving its ``lease_until`` forward with a conditional
update on the value it read; a sender that dies mid-attempt leaves the lease to run out, and the next
poll takes the delivery up again. (On FerretDB, whose conditional updates are not atomic, two sender
processes could both claim one delivery now and then: a duplicate the receiver drops by
``webhook-id``, never a loss.)

Besides the shape in :mod:`schemas.view`, each delivery keeps what the DLQ needs if it gives up:
``event`` (the task event's record, as consumed), ``source`` {topic, partition, offset}, and
``event_time``; ``disabled`` marks the delivery whose receiver answered 410.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from schemas.view import WEBHOOK_DELIVERIES, WEBHOOK_SECRETS, WebhookStatus
from schemas.webhook_secrets import live
from schemas.webhooks import DEFAULT_FILTER, WebhookEvent
from streams.view_store import JobViewStore
from streams.webhook_signing import SigningKey, parse_secret

DUPLICATE_KEY = 11000
OPEN = [WebhookStatus.PENDING.value, WebhookStatus.FAILING.value]
_EVENT_NAMES = frozenset(event.value for event in WebhookEvent)
SECRETS_TTL_S = 10.0  # a rotated secret signs within this long


@dataclass(frozen=True, slots=True)
class Target:
    """Where a story's webhooks go, and which of them it asked for."""

    account_id: str
    url: str
    wanted: frozenset[WebhookEvent]
    disabled: bool = False  # its receiver answered 410 Gone


class WebhookStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.view = JobViewStore(database)
        self.deliveries = database[WEBHOOK_DELIVERIES]
        self._secrets = database[WEBHOOK_SECRETS]
        self._keys: dict[str, tuple[float, list[SigningKey]]] = {}

    def ensure_indexes(self) -> None:
        self.deliveries.create_index([("status", ASCENDING), ("next_at", ASCENDING)])
        self.deliveries.create_index(
            [("story_id", ASCENDING), ("account_id", ASCENDING), ("updated_at", DESCENDING)]
        )

    # -- the intake's side ---------------------------------------------------------------------------

    def targets(self, story_ids: Sequence[str]) -> dict[str, Target | None]:
        """Each story found in the job view: its target, or ``None`` when it has no webhook URL.

        A story the view does not hold yet is absent from the answer.
        """
        found: dict[str, Target | None] = {}
        if not story_ids:
            return found
        fields = {"account_id": 1, "callback_url": 1, "webhook_events": 1}
        for doc in self.view.stories.find({"_id": {"$in": list(story_ids)}}, fields):
            url = doc.get("callback_url")
            if not url:
                found[doc["_id"]] = None
                continue
            names = doc.get("webhook_events") or []
            wanted = frozenset(WebhookEvent(n) for n in names if n in _EVENT_NAMES) or DEFAULT_FILTER
            found[doc["_id"]] = Target(str(doc.get("account_id") or ""), str(url), wanted)
        with_url = [sid for sid, target in found.items() if target is not None]
        if with_url:
            gone = set(
                self.deliveries.distinct("story_id", {"story_id": {"$in": with_url}, "disabled": True})
            )
            for story_id in gone:
                target = found[story_id]
                if target is not None:
                    found[story_id] = Target(target.account_id, target.url, target.wanted, disabled=True)
        return found

    def add(self, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Insert new deliveries; those already there (a replayed event) are left as they are.

        Returns the ids inserted now.
        """
        if not docs:
            return []
        try:
            self.deliveries.insert_many([dict(doc) for doc in docs], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            dupes = {docs[error["index"]]["_id"] for error in errors}
            return [doc["_id"] for doc in docs if doc["_id"] not in dupes]
        return [doc["_id"] for doc in docs]

    def rearm(self, ids: Iterable[str], now_ms: int) -> int:
        """Deliveries that ended ``failed`` start a new round of attempts (their dead letter was replayed)."""
        ids = list(ids)
        if not ids:
            return 0
        result = self.deliveries.update_many(
            {"_id": {"$in": ids}, "status": WebhookStatus.FAILED.value, "disabled": {"$ne": True}},
            {"$set": {"status": WebhookStatus.PENDING.value, "attempts": 0, "next_at": now_ms,
                      "lease_until": 0, "updated_at": now_ms}},
        )  # fmt: skip
        return int(result.modified_count)

    # -- the sender's side ---------------------------------------------------------------------------

    def due(self, now_ms: int, limit: int, skip: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Open deliveries whose next attempt is due and whose lease has run out, soonest first."""
        query: dict[str, Any] = {
            "status": {"$in": OPEN}, "next_at": {"$lte": now_ms}, "lease_until": {"$lte": now_ms}
        }  # fmt: skip
        skipped = list(skip)
        if skipped:
            query["_id"] = {"$nin": skipped}
        return list(self.deliveries.find(query).sort("next_at", ASCENDING).limit(limit))

    def claim(self, doc: Mapping[str, Any], now_ms: int, lease_ms: int) -> bool:
        """Lease ``doc`` for one attempt, if nobody else claimed it since it was read."""
        result = self.deliveries.update_one(
            {"_id": doc["_id"], "status": {"$in": OPEN}, "lease_until": doc.get("lease_until", 0)},
            {"$set": {"lease_until": now_ms + lease_ms}},
        )
        return result.modified_count == 1

    def record(self, delivery_id: str, fields: Mapping[str, Any]) -> None:
        """Write what an attempt ended with (status, attempts, next_at, last_status, last_error, ...)."""
        self.deliveries.update_one({"_id": delivery_id}, {"$set": dict(fields)})

    def skip_open(self, story_id: str, reason: str, now_ms: int) -> int:
        """The story's open deliveries will not be sent (its receiver answered 410)."""
        result = self.deliveries.update_many(
            {"story_id": story_id, "status": {"$in": OPEN}},
            {"$set": {"status": WebhookStatus.SKIPPED.value, "last_error": reason, "next_at": None,
                      "updated_at": now_ms}},
        )  # fmt: skip
        return int(result.modified_count)

    def signing_keys(self, account_id: str, now_ms: int) -> list[SigningKey]:
        """The account's live secrets, newest first (empty when it has none); cached for a few seconds."""
        cached = self._keys.get(account_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        doc = self._secrets.find_one({"_id": account_id}) or {}
        keys = [parse_secret(str(entry["secret"])) for entry in live(doc.get("secrets") or [], now_ms)]
        self._keys[account_id] = (time.monotonic() + SECRETS_TTL_S, keys)
        return keys

    def counts(self) -> dict[str, int]:
        """Deliveries per status (for the gauge and the benchmark)."""
        return {
            status.value: self.deliveries.count_documents({"status": status.value})
            for status in WebhookStatus
        }
