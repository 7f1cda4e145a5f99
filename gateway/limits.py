"""Request limits shared by every gateway process: a sliding window per user, a token bucket per account.

The state lives in MongoDB so the limits hold across processes and instances. The local MongoDB-wire
server (FerretDB on SQLite) applies ``$inc`` and conditional updates without isolation: concurrent
increments get lost. Its one race-free primitive is the unique ``_id``, so every unit of a limit is a
*claim document* with a deterministic id, and an insert that hits a duplicate key means "someone else
has it". Claims go in batches (``insert_many``, unordered): a process *leases* a few units with one
round trip and spends them locally, so MongoDB sees a write per lease, not per request. Leased units
that are never spent still count, so a limit may be undershot by about 1.5 leases per process and
scope (a lease plus the top-up below), never exceeded; leases are a small fraction of the limit (1 for
the default 60/minute per user, where every request claims its own slot).

- Per user (API key): the sliding-window counter approximation. Slot ``u:<key>:<minute>:<n>`` is the
  ``n``-th request of a fixed minute; the estimate over the last 60 s is ``previous minute's count *
  (1 - elapsed fraction) + this minute's count``, so a request may claim slot ``n`` only while
  ``n < limit - previous * (1 - elapsed)``.
- Per account: a token bucket on a time grid. Token ``a:<account>:<j>`` appears at ``j * interval``
  (``interval = 60 / rate``); at time ``t`` the bucket holds the unclaimed tokens among the newest
  ``burst`` (older ones overflowed). Claiming oldest first makes this exactly a token bucket.

Each process remembers where the claimed region ends, and everything before it is taken, so a refusal
costs no round trip. A lease is topped up in the background once half of it is spent, so under steady
load requests rarely wait for MongoDB at all. Claims carry ``expires_at`` (seconds); the server has no
TTL indexes, so :meth:`SharedLimits.purge` deletes them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymongo.errors import BulkWriteError

from gateway.accounts import Principal
from gateway.exceptions import RateLimited

log = logging.getLogger(__name__)

WINDOW_S = 60.0
_STATE_MAX = 50_000


@dataclass(slots=True)
class _Window:
    index: int
    previous: int | None = None  # the previous minute's count, read once
    next_slot: int = 0  # every slot below it is claimed (by us or another process)


@dataclass(slots=True)
class _Bucket:
    next_token: int = 0  # every token from the bucket's oldest up to here is claimed


@dataclass(slots=True)
class _Lease:
    """Units of one scope this process claimed and has not spent yet."""

    tag: int = 0  # the minute the units belong to (always 0 for a bucket)
    units: int = 0
    refill: asyncio.Task[None] | None = None


class SharedLimits:
    """Charges one request to its user's window and its account's bucket, or raises :class:`RateLimited`."""

    def __init__(
        self,
        collection: Any,
        *,
        user_per_minute: int,
        account_per_minute: int,
        account_burst: int,
        lease_max: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._claims = collection
        self._user_limit = user_per_minute
        self._account_rate = account_per_minute
        self._burst = account_burst
        self._clock = clock
        self._user_lease = max(1, min(lease_max, user_per_minute // 50))
        self._account_lease = max(1, min(lease_max, account_burst // 10, account_per_minute // 50 or 1))
        self._windows: dict[str, _Window] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._leases: dict[str, _Lease] = {}

    async def prepare(self) -> None:
        """Create the indexes the previous-minute count and the purge use (harmless to repeat)."""
        await self._claims.create_index([("scope", 1), ("window", 1)])
        await self._claims.create_index([("expires_at", 1)])

    async def charge(self, principal: Principal) -> None:
        """Spend one unit of the user's window and one token of the account's bucket."""
        # The user's window first: a user over its own limit must not drain the account's bucket.
        if self._user_limit > 0:
            scope = f"u:{principal.key_id}"
            await self._spend(
                scope,
                self._user_lease,
                lambda: int(self._clock() // WINDOW_S),
                lambda index: self._claim_window(scope, index),
            )
        if self._account_rate > 0:
            scope = f"a:{principal.account_id}"
            await self._spend(scope, self._account_lease, lambda: 0, lambda _: self._claim_tokens(scope))

    async def purge(self) -> int:
        """Delete expired claims; return how many."""
        result = await self._claims.delete_many({"expires_at": {"$lt": self._clock()}})
        return int(result.deleted_count)

    # -- leases -------------------------------------------------------------------------------------

    async def _spend(
        self, scope: str, size: int, tag_now: Callable[[], int], claim: Callable[[int], Awaitable[int]]
    ) -> None:
        """Take one unit from the scope's lease, waiting for (or starting) a claim when it is empty."""
        lease = self._leases.get(scope)
        if lease is None:
            if len(self._leases) >= _STATE_MAX:
                self._leases.clear()
            lease = self._leases[scope] = _Lease(tag_now())
        while True:
            tag = tag_now()
            if tag > lease.tag:  # a new minute: the last one's units are worth nothing now
                lease.tag, lease.units, lease.refill = tag, 0, None
            if lease.units > 0:
                lease.units -= 1
                if size > 1 and lease.units <= size // 2 and lease.refill is None:
                    self._refill(lease, lease.tag, claim)  # top up before anyone has to wait
                return
            refill = lease.refill or self._refill(lease, lease.tag, claim)
            # Shielded: a client that hangs up must not cancel the claim the other waiters share.
            await asyncio.shield(refill)  # raises RateLimited when the claim was refused

    def _refill(self, lease: _Lease, tag: int, claim: Callable[[int], Awaitable[int]]) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                granted = await claim(tag)
                if lease.tag == tag:
                    lease.units += granted
            finally:
                if lease.refill is task:
                    lease.refill = None

        task = asyncio.create_task(run())
        lease.refill = task
        task.add_done_callback(_observe)
        return task

    async def _claim(self, ids: range, prefix: str, expires_at: float, extra: dict[str, Any]) -> int:
        """Insert one claim per id; return how many were ours (the rest already existed)."""
        docs = [{"_id": f"{prefix}{i}", "expires_at": expires_at, **extra} for i in ids]
        try:
            result = await self._claims.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != 11000 for error in errors):
                raise
            return int(exc.details.get("nInserted", 0))
        return len(result.inserted_ids)

    # -- per user: sliding window -------------------------------------------------------------------

    async def _claim_window(self, scope: str, index: int) -> int:
        """Claim up to a lease of this minute's slots; raise :class:`RateLimited` when none is left."""
        state = self._windows.get(scope)
        if state is None or state.index != index:
            if len(self._windows) >= _STATE_MAX:
                self._windows.clear()
            state = self._windows[scope] = _Window(index)
        if state.previous is None:
            state.previous = await self._claims.count_documents({"scope": scope, "window": index - 1})
        now = self._clock()
        elapsed = min(1.0, (now - index * WINDOW_S) / WINDOW_S)
        # How many requests this minute may hold right now, given what the previous one still weighs.
        allowed = math.floor(self._user_limit - state.previous * (1.0 - elapsed) + 1e-9)
        while state.next_slot < allowed:
            slots = range(state.next_slot, min(state.next_slot + self._user_lease, allowed))
            granted = await self._claim(
                slots, f"{scope}:{index}:", (index + 2) * WINDOW_S, {"scope": scope, "window": index}
            )
            state.next_slot = slots.stop
            if granted:
                return granted
        raise self._refusal(state, now)

    def _refusal(self, state: _Window, now: float) -> RateLimited:
        limit, previous, current = self._user_limit, state.previous or 0, state.next_slot
        start = state.index * WINDOW_S
        if current + 1 <= limit and previous > 0:
            # Later in this minute the previous one weighs less: wait until one more fits.
            wait = start + (1.0 - (limit - current - 1) / previous) * WINDOW_S - now
        else:
            # Only the next minute has room, once this one weighs little enough.
            wait = start + WINDOW_S + max(0.0, 1.0 - (limit - 1) / max(current, 1)) * WINDOW_S - now
        return RateLimited(
            f"more than {limit} requests a minute for this API key",
            retry_after=max(1, math.ceil(wait)),
            reason="user",
        )

    # -- per account: token bucket ------------------------------------------------------------------

    async def _claim_tokens(self, scope: str) -> int:
        """Claim up to a lease of the bucket's oldest unclaimed tokens; raise when it is empty."""
        interval = WINDOW_S / self._account_rate
        state = self._buckets.get(scope)
        if state is None:
            if len(self._buckets) >= _STATE_MAX:
                self._buckets.clear()
            state = self._buckets[scope] = _Bucket()
        now = self._clock()
        newest = math.floor(now / interval)
        state.next_token = max(state.next_token, newest - self._burst + 1)  # older ones overflowed
        while state.next_token <= newest:
            tokens = range(state.next_token, min(state.next_token + self._account_lease, newest + 1))
            granted = await self._claim(tokens, f"{scope}:", (tokens.stop + self._burst) * interval, {})
            state.next_token = tokens.stop
            if granted:
                return granted
        raise RateLimited(
            f"more than {self._account_rate} requests a minute for this account",
            retry_after=max(1, math.ceil(state.next_token * interval - now)),
            reason="account",
        )


def _observe(task: asyncio.Task[None]) -> None:
    """Mark a refill's outcome as seen: a refused top-up nobody waited for is not an error."""
    if not task.cancelled():
        task.exception()
