"""Accounts and their API keys, stored in MongoDB; keys only as SHA-256 hashes.

A key is 256 random bits, so an unsalted SHA-256 is enough to make a stolen ``api_keys`` collection
useless (nothing to brute-force), and it lets a lookup go straight to the document by ``_id``. Each key is
one *user* of its account: the per-user rate limit counts per key, the per-account one per account.
Lookups are cached for a few seconds per process: the MongoDB-wire server is slow per operation, and a
revoked key that keeps working for ``api_key_cache_ttl_s`` is the price.

The end-to-end probe's account (:data:`schemas.ids.PROBE_ACCOUNT`) is nobody's: no key is ever added
to it, and a key that names it (put into the database by hand) authenticates no one, so no caller can
submit, read or cancel as the probe.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from schemas.ids import PROBE_ACCOUNT, now_ms
from schemas.records import Tier
from schemas.view import ACCOUNTS, API_KEYS

log = logging.getLogger(__name__)

KEY_PREFIX = "sk_"
_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account, its tier, and the key (the user) that authenticated."""

    account_id: str
    tier: Tier
    key_id: str


@dataclass(frozen=True, slots=True)
class NewAccount:
    account_id: str
    tier: Tier
    name: str | None
    api_key: str  # shown once; only its hash is stored


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class AccountStore:
    """Creates accounts and keys; resolves a presented key to a :class:`Principal`."""

    def __init__(self, database: Any, *, cache_ttl_s: float = 30.0) -> None:
        self._accounts = database[ACCOUNTS]
        self._keys = database[API_KEYS]
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create(self, tier: Tier, name: str | None = None) -> NewAccount:
        """A new account with one API key."""
        account_id = "acct_" + uuid.uuid4().hex[:16]
        await self._accounts.insert_one(
            {"_id": account_id, "tier": tier.value, "name": name, "created_at": now_ms()}
        )
        api_key = await self.add_key(account_id)
        log.info("created account account_id=%s tier=%s", account_id, tier.value)
        return NewAccount(account_id, tier, name, api_key)

    async def add_key(self, account_id: str) -> str:
        if account_id == PROBE_ACCOUNT:
            raise ValueError(f"account_id {account_id!r} is reserved for the end-to-end probe")
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(api_key)
        await self._keys.insert_one(
            {
                "_id": digest,
                "key_id": digest[:16],
                "account_id": account_id,
                "created_at": now_ms(),
                "revoked": False,
            }
        )
        return api_key

    async def resolve(self, api_key: str) -> Principal | None:
        """The principal behind ``api_key``, or ``None`` when it matches no live key."""
        if not api_key.startswith(KEY_PREFIX) or len(api_key) > 128:
            return None  # not one of ours: no need to ask the database
        digest = hash_key(api_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await self._keys.find_one({"_id": digest})
        if key is None or key.get("revoked") or key.get("account_id") == PROBE_ACCOUNT:
            return None
        account = await self._accounts.find_one({"_id": key["account_id"]})
        if account is None:
            return None
        principal = Principal(account["_id"], Tier(account["tier"]), key["key_id"])
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()  # crude but bounded; a refill costs two reads per active key
        self._cache[digest] = (now + self._cache_ttl_s, principal)
        return principal
