"""``Idempotency-Key``: the same key from the same account is the same story, published once.

The story id is derived from ``(account_id, key)``, so even a retry after a crash re-publishes the same
id and downstream deduplicates it. A record in ``idempotency_keys`` makes an ordinary retry answer
without a second event: it is *reserved* (``pending``, with a lease) before publishing, marked
``published`` after Kafka acknowledged, and deleted when publishing failed, so a key is only remembered
for submissions that were published. A pending reservation whose lease ran out (its process died
mid-publish) may be taken over; one still leased answers 409, as a concurrent duplicate.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from gateway.exceptions import Conflict

IDEMPOTENCY_KEYS = "idempotency_keys"
MAX_KEY_CHARS = 255
# Any fixed UUID works: it only separates our derived ids from other uuid5 users.
_NAMESPACE = uuid.UUID("7f5c2a4e-9a51-4d0e-8d4b-3f1e6c2b9a10")


def story_id_for(account_id: str, key: str) -> str:
    """The story id a keyed submission always gets (32 hex digits, like a random one)."""
    return uuid.uuid5(_NAMESPACE, f"{account_id}\n{key}").hex


def new_story_id() -> str:
    return uuid.uuid4().hex


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Earlier:
    """A submission already published under this key."""

    story_id: str
    submitted_at: int


class IdempotencyRecords:
    """Reserve, confirm or release keyed submissions."""

    def __init__(self, database: Any, *, ttl_s: int, lease_s: float) -> None:
        self._records = database[IDEMPOTENCY_KEYS]
        self._ttl_s = ttl_s
        self._lease_s = lease_s

    async def reserve(self, account_id: str, key: str, story_id: str, request_hash: str) -> Earlier | None:
        """Reserve ``key``; return the earlier submission if it was already published."""
        record_id = f"{account_id}:{key}"
        now = time.time()
        pending = {
            "state": "pending",
            "story_id": story_id,
            "request_hash": request_hash,
            "lease_until": now + self._lease_s,
            "expires_at": now + self._ttl_s,
        }
        try:
            await self._records.insert_one({"_id": record_id, **pending})
            return None
        except DuplicateKeyError:
            pass
        record = await self._records.find_one({"_id": record_id})
        if record is None:  # released between our insert and read: the earlier attempt failed
            return await self.reserve(account_id, key, story_id, request_hash)
        if record["request_hash"] != request_hash:
            raise Conflict("this Idempotency-Key was used with a different request", field="Idempotency-Key")
        if record["state"] == "published":
            return Earlier(record["story_id"], int(record["submitted_at"]))
        if record["lease_until"] > now:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress", field="Idempotency-Key"
            )
        taken = await self._records.update_one(
            {"_id": record_id, "state": "pending", "lease_until": record["lease_until"]}, {"$set": pending}
        )
        if taken.matched_count == 0:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress", field="Idempotency-Key"
            )
        return None

    async def confirm(self, account_id: str, key: str, submitted_at: int) -> None:
        await self._records.update_one(
            {"_id": f"{account_id}:{key}"},
            {"$set": {"state": "published", "submitted_at": submitted_at}, "$unset": {"lease_until": ""}},
        )

    async def release(self, account_id: str, key: str) -> None:
        await self._records.delete_one({"_id": f"{account_id}:{key}", "state": "pending"})

    async def purge(self) -> int:
        result = await self._records.delete_many({"expires_at": {"$lt": time.time()}})
        return int(result.deleted_count)
