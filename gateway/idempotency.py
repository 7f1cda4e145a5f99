"""``Idempotency-Key``: the same key from the same account is the same story, published once, while the
key is remembered (``IDEMPOTENCY_TTL``).

A record in ``idempotency_keys`` (``_id`` ``<account_id>:<key>``) holds the story id freshly drawn for
the key's acceptance. It is *reserved* (``pending``, with a lease) before publishing, marked
``published`` after Kafka acknowledged, and deleted when publishing failed, so a key is only remembered
for submissions that were published. A retry answers with the recorded story and publishes nothing. A
pending reservation whose lease ran out (its process died mid-publish) is taken over and re-publishes
the *same* story id, which downstream deduplicates; one still leased answers 409. Once a record has
expired the key is forgotten: the next acceptance draws a new story id, so it never overwrites or merges
into the old story.

Races between gateway processes are settled by unique inserts only, because the MongoDB-wire server's
conditional updates and deletes are not atomic under concurrency (it reads the matches, then writes by
``_id``). The first insert of a record wins. Every record carries a ``version``, and any change to a
record made by a process other than the one holding it (taking over an expired lease, replacing an
expired record, purging it) first inserts a *claim* named after that version into
``idempotency_claims``: only the process whose claim insert succeeded changes that version, and it
writes a new one. The holder's own confirm and release need no claim: until its lease runs out nobody
else may change the record.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.exceptions import Conflict

IDEMPOTENCY_KEYS = "idempotency_keys"
IDEMPOTENCY_CLAIMS = "idempotency_claims"
MAX_KEY_CHARS = 255
# Tries of one reservation when another process is replacing or purging the same record meanwhile.
_ATTEMPTS = 8
_RETRY_S = 0.05


def new_story_id() -> str:
    return uuid.uuid4().hex


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Earlier:
    """A submission already published under this key, which is still remembered."""

    story_id: str
    submitted_at: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """This process may publish ``story_id`` under the key; ``version`` is its hold on the record."""

    story_id: str
    version: str


class IdempotencyRecords:
    """Reserve, confirm or release keyed submissions; purge the expired ones."""

    def __init__(
        self, database: Any, *, ttl_s: int, lease_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._records = database[IDEMPOTENCY_KEYS]
        self._claims = database[IDEMPOTENCY_CLAIMS]
        self._ttl_s = ttl_s
        self._lease_s = lease_s
        self._clock = clock

    async def reserve(self, account_id: str, key: str, request_hash: str) -> Reservation | Earlier:
        """Reserve ``key`` for a new story id, or for the same one again after a crashed publish; or
        return the earlier submission when it was published and is still remembered."""
        record_id = _record_id(account_id, key)
        for attempt in range(_ATTEMPTS):
            if attempt:
                await asyncio.sleep(_RETRY_S * attempt)
            now = self._clock()
            fresh = self._pending(new_story_id(), request_hash, now)
            try:
                await self._records.insert_one({"_id": record_id, **fresh})
                return Reservation(fresh["story_id"], fresh["version"])
            except DuplicateKeyError:
                pass
            record = await self._records.find_one({"_id": record_id})
            if record is None:  # released or purged since our insert: insert again
                continue
            leased = record.get("lease_until") is not None and record["lease_until"] > now
            if record["expires_at"] <= now and not leased:
                # Forgotten: a new acceptance, with a story id of its own, replaces the record.
                replaced = await self._change(record, now, {"$set": fresh, "$unset": {"submitted_at": ""}})
                if replaced:
                    return Reservation(fresh["story_id"], fresh["version"])
                continue  # another process is replacing or purging it: look again
            if record["request_hash"] != request_hash:
                raise Conflict(
                    "this Idempotency-Key was used with a different request", field="Idempotency-Key"
                )
            if record["state"] == "published":
                return Earlier(record["story_id"], int(record["submitted_at"]))
            if leased:
                raise _in_progress()
            # Its process died mid-publish: publish the same story id again (downstream deduplicates it).
            again = self._pending(record["story_id"], request_hash, now)
            if await self._change(record, now, {"$set": again}):
                return Reservation(record["story_id"], again["version"])
            raise _in_progress()  # another process took it over first
        raise _in_progress()

    async def confirm(self, account_id: str, key: str, reservation: Reservation, submitted_at: int) -> None:
        """The story is on Kafka: remember the key for the TTL from now."""
        await self._records.update_one(
            {"_id": _record_id(account_id, key), "story_id": reservation.story_id, "state": "pending"},
            {
                "$set": {
                    "state": "published",
                    "submitted_at": submitted_at,
                    "expires_at": self._clock() + self._ttl_s,
                },
                "$unset": {"lease_until": ""},
            },
        )

    async def release(self, account_id: str, key: str, reservation: Reservation) -> None:
        """Publishing failed: forget the reservation, unless another process has taken it over."""
        await self._records.delete_one(
            {"_id": _record_id(account_id, key), "version": reservation.version, "state": "pending"}
        )

    async def purge(self) -> int:
        """Delete expired records (each claimed first, like any change) and spent claims."""
        now = self._clock()
        expired = [
            record
            async for record in self._records.find(
                {"expires_at": {"$lt": now}}, {"version": 1, "lease_until": 1}
            )
            if record.get("lease_until") is None or record["lease_until"] <= now
        ]
        removed = 0
        if expired:
            claimed = await self._claim_all(expired, now)
            if claimed:
                result = await self._records.delete_many({"_id": {"$in": claimed}})
                removed += int(result.deleted_count)
        spent = await self._claims.delete_many({"expires_at": {"$lt": now}})
        return removed + int(spent.deleted_count)

    def _pending(self, story_id: str, request_hash: str, now: float) -> dict[str, Any]:
        return {
            "state": "pending",
            "story_id": story_id,
            "request_hash": request_hash,
            "version": uuid.uuid4().hex,
            "lease_until": now + self._lease_s,
            "expires_at": now + max(self._ttl_s, self._lease_s),
        }

    async def _change(self, record: dict[str, Any], now: float, update: dict[str, Any]) -> bool:
        """Apply ``update`` to ``record`` as this version's one claimant; ``False`` if another is."""
        try:
            await self._claims.insert_one({"_id": _claim_id(record), "expires_at": now + self._lease_s})
        except DuplicateKeyError:
            return False
        changed = await self._records.update_one(
            {"_id": record["_id"], "version": record.get("version")}, update
        )
        return changed.matched_count == 1  # 0: it changed after our read (a claim that had been purged)

    async def _claim_all(self, records: list[dict[str, Any]], now: float) -> list[str]:
        """The ids of ``records`` whose versions this process claimed (others are being changed)."""
        claims = [{"_id": _claim_id(record), "expires_at": now + self._lease_s} for record in records]
        try:
            await self._claims.insert_many(claims, ordered=False)
        except BulkWriteError as exc:
            taken = {claims[error["index"]]["_id"] for error in exc.details.get("writeErrors", [])}
            return [record["_id"] for record in records if _claim_id(record) not in taken]
        return [record["_id"] for record in records]


def _record_id(account_id: str, key: str) -> str:
    return f"{account_id}:{key}"


def _claim_id(record: dict[str, Any]) -> str:
    # Records written before versions existed have none; their one claim is "unversioned".
    return f"{record['_id']}@{record.get('version') or 'unversioned'}"


def _in_progress() -> Conflict:
    return Conflict("a request with this Idempotency-Key is still in progress", field="Idempotency-Key")
