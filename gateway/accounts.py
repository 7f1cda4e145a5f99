"""Accounts and their API keys, stored in MongoDB; keys only as SHA-256 hashes.

A key is 256 random bits, so an unsalted SHA-256 is enough to make a stolen ``api_keys`` collection
useless (nothing to brute-force), and it lets a lookup go straight to the document by ``_id``. Each key is
one *user* of its account: the per-user rate limit counts per key, the per-account one per account.
Lookups are cached for a few seconds per process: the MongoDB-wire server is slow per operation, and a
revoked key that keeps working for ``api_key_cache_ttl_s`` is the price.

Each account also has webhook signing secrets (``webhook_secrets``, :mod:`schemas.webhook_secrets`): one
made with the account and shown once beside its key, more by a rotation. Unlike keys they are stored as
they are, since the delivery service signs with them; nothing here ever returns a stored one, only the
secret just made.

The end-to-end probe's account (:data:`schemas.ids.PROBE_ACCOUNT`) is nobody's: no key is ever added
to it, and a key that names it (put into the database by hand) authenticates no one, so no caller can
submit, read or cancel as the probe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import DuplicateKeyError

from gateway.exceptions import Conflict, NotFound
from schemas.ids import PROBE_ACCOUNT, now_ms
from schemas.records import Tier
from schemas.view import ACCOUNTS, API_KEYS, WEBHOOK_SECRETS
from schemas.webhook_secrets import generate_secret, live, new_entry, rotated

log = logging.getLogger(__name__)

KEY_PREFIX = "sk_"
_CACHE_MAX = 10_000
WEBHOOK_SECRET_LOCKS = "webhook_secret_locks"
# Rotations of one account take turns: the MongoDB-wire server's conditional updates are not atomic
# under concurrency (see gateway.idempotency), so a unique insert of a lock settles who writes.
_LOCK_LEASE_MS = 30_000
_LOCK_WAIT_S, _LOCK_POLL_S = 10.0, 0.05


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
    api_key: str = field(repr=False)  # shown once; only its hash is stored
    webhook_secret: str = field(repr=False)  # shown once; stored, to sign the account's webhooks


@dataclass(frozen=True, slots=True)
class SecretLife:
    """When one of an account's webhook secrets was made and when it stops signing (``None``: no end)."""

    created_at: int
    retires_at: int | None


@dataclass(frozen=True, slots=True)
class RotatedSecret:
    """A rotation's new secret (shown once) and every live secret afterwards, newest first."""

    account_id: str
    webhook_secret: str = field(repr=False)
    live: tuple[SecretLife, ...]


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class AccountStore:
    """Creates accounts and keys; resolves a presented key to a :class:`Principal`."""

    def __init__(self, database: Any, *, cache_ttl_s: float = 30.0) -> None:
        self._accounts = database[ACCOUNTS]
        self._keys = database[API_KEYS]
        self._secrets = database[WEBHOOK_SECRETS]
        self._secret_locks = database[WEBHOOK_SECRET_LOCKS]
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create(self, tier: Tier, name: str | None = None) -> NewAccount:
        """A new account with one API key and one webhook secret."""
        account_id = "acct_" + uuid.uuid4().hex[:16]
        created_at = now_ms()
        await self._accounts.insert_one(
            {"_id": account_id, "tier": tier.value, "name": name, "created_at": created_at}
        )
        secret = generate_secret()
        await self._secrets.insert_one(
            {
                "_id": account_id,
                "secrets": [new_entry(secret, created_at)],
                "updated_at": created_at,
            }
        )
        api_key = await self.add_key(account_id)
        log.info("created account account_id=%s tier=%s", account_id, tier.value)
        return NewAccount(account_id, tier, name, api_key, secret)

    async def rotate_webhook_secret(self, account_id: str, *, grace_s: float) -> RotatedSecret:
        """Add a new webhook secret first; the live ones sign beside it for ``grace_s`` more seconds.

        Secrets already retired are pruned. An account made before webhook secrets existed gets its
        first one. Raises :class:`NotFound` for no such account.
        """
        if grace_s < 0:
            raise ValueError(f"grace must not be negative, got {grace_s} s")
        if account_id == PROBE_ACCOUNT or await self._accounts.find_one({"_id": account_id}) is None:
            raise NotFound(f"no account {account_id!r}")
        secret = generate_secret()
        token = await self._lock_secrets(account_id)
        try:
            now = now_ms()
            doc = await self._secrets.find_one({"_id": account_id})
            entries = rotated(doc["secrets"] if doc else [], secret, now_ms=now, grace_ms=int(grace_s * 1000))
            await self._secrets.update_one(
                {"_id": account_id}, {"$set": {"secrets": entries, "updated_at": now}}, upsert=True
            )
        finally:
            await self._secret_locks.delete_one({"_id": account_id, "token": token})
        log.info("rotated webhook secret account_id=%s grace_s=%s", account_id, grace_s)
        return RotatedSecret(account_id, secret, _lives(entries, now))

    async def webhook_signing(self, account_id: str) -> tuple[SecretLife, ...]:
        """The account's live webhook secrets, newest first, without the secrets themselves."""
        if account_id == PROBE_ACCOUNT or await self._accounts.find_one({"_id": account_id}) is None:
            raise NotFound(f"no account {account_id!r}")
        doc = await self._secrets.find_one({"_id": account_id})
        return _lives(doc["secrets"] if doc else [], now_ms())

    async def _lock_secrets(self, account_id: str) -> str:
        """Hold the account's rotation lock (a unique insert); wait for another holder, or take over its
        lock once its lease ran out (a rotation that died). Returns the lock's token."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            now = now_ms()
            try:
                await self._secret_locks.insert_one(
                    {"_id": account_id, "token": token, "expires_at": now + _LOCK_LEASE_MS}
                )
                return token
            except DuplicateKeyError:
                held = await self._secret_locks.find_one({"_id": account_id})
            if held is not None and held["expires_at"] <= now:
                await self._secret_locks.delete_one({"_id": account_id, "token": held["token"]})
                continue
            if time.monotonic() > deadline:
                raise Conflict(f"another rotation of account {account_id!r} is under way; try again")
            await asyncio.sleep(_LOCK_POLL_S)

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


def _lives(entries: Sequence[Mapping[str, Any]], now: int) -> tuple[SecretLife, ...]:
    return tuple(SecretLife(entry["created_at"], entry.get("retires_at")) for entry in live(entries, now))
