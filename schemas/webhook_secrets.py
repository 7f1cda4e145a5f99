"""An account's webhook signing secrets: making one, and the rules of a rotation (pure, no I/O).

A secret is ``whsec_`` + base64 of 24 to 64 random bytes (Standard Webhooks). An account holds a list,
newest first, stored in ``webhook_secrets`` (:mod:`schemas.view`): each ``{secret, created_at,
retires_at}``, times in milliseconds since the Unix epoch. A secret is *live* until its ``retires_at``
(``None``: no end); every live secret signs, so while one rotates a receiver holding either the new or
the old one verifies. The accounts commands write the list with :func:`rotated`; the delivery service
signs with :func:`live`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 at least
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64
DEFAULT_GRACE_S = 24 * 3600


def generate_secret(nbytes: int = SECRET_BYTES) -> str:
    """A new ``whsec_`` secret of ``nbytes`` random bytes (24 to 64), shown to its owner once."""
    if not MIN_KEY_BYTES <= nbytes <= MAX_KEY_BYTES:
        raise ValueError(f"nbytes must be between {MIN_KEY_BYTES} and {MAX_KEY_BYTES}, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def new_entry(secret: str, now_ms: int) -> dict[str, Any]:
    """A freshly made secret's entry: live with no end."""
    return {"secret": secret, "created_at": now_ms, "retires_at": None}


def is_live(entry: Mapping[str, Any], now_ms: int) -> bool:
    retires_at = entry.get("retires_at")
    return retires_at is None or retires_at > now_ms


def live(entries: Sequence[Mapping[str, Any]], now_ms: int) -> list[Mapping[str, Any]]:
    """The entries that sign at ``now_ms``, newest first as stored."""
    return [entry for entry in entries if is_live(entry, now_ms)]


def rotated(
    entries: Sequence[Mapping[str, Any]], secret: str, *, now_ms: int, grace_ms: int
) -> list[dict[str, Any]]:
    """The list after rotating in ``secret``: it first, the live ones retiring within ``grace_ms``.

    A secret already retiring keeps the earlier of its end and ``now + grace``: a rotation never lengthens
    an old secret's life, so ``grace_ms=0`` (a leaked secret) ends every old one at once. Entries
    already retired are dropped.
    """
    if grace_ms < 0:
        raise ValueError(f"grace must not be negative, got {grace_ms} ms")
    ends = now_ms + grace_ms
    kept = [
        {**entry, "retires_at": ends if entry.get("retires_at") is None else min(entry["retires_at"], ends)}
        for entry in live(entries, now_ms)
    ]
    return [new_entry(secret, now_ms), *(entry for entry in kept if is_live(entry, now_ms))]
