"""Standard Webhooks signatures (standardwebhooks.com): sign what the delivery sends, verify like a receiver.

A webhook carries three headers: ``webhook-id`` (stable across retries: the receiver's idempotency
key), ``webhook-timestamp`` (the attempt's unix seconds, so each retry is signed afresh) and
``webhook-signature``, a space-separated list of ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
with one entry per secret: while an account's secret rotates, both the new and the old one sign, and
a receiver holding either verifies. Secrets are ``whsec_`` + base64 of 24 to 64 random bytes, made by
:func:`schemas.webhook_secrets.generate_secret` (re-exported here); the HMAC key is the decoded bytes.
The spec's published vector is in the tests.

Only symmetric ``v1`` signatures are made here. Ed25519 ``v1a`` (``whsk_``/``whpk_`` keys) needs the
``cryptography`` package, which is not a dependency yet; :func:`verify` skips ``v1a`` entries, as
the reference libraries skip versions they do not know.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.webhook_secrets import MIN_KEY_BYTES, SECRET_PREFIX
from schemas.webhook_secrets import generate_secret as generate_secret
from streams.exceptions import StreamsError

SIGNATURE_VERSION = "v1"
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
DEFAULT_TOLERANCE_S = 5 * 60


class WebhookSignatureError(StreamsError):
    """A secret is malformed, or a webhook does not verify; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A decoded ``whsec_`` secret: the HMAC key. ``repr`` never shows it."""

    key: bytes

    def __repr__(self) -> str:
        return "SigningKey(***)"


def parse_secret(secret: str) -> SigningKey:
    """The key of a ``whsec_<base64>`` secret; :class:`WebhookSignatureError` if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSignatureError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)  # padding optional
    except (binascii.Error, ValueError):
        raise WebhookSignatureError("a webhook secret is base64 after its prefix") from None
    if len(key) < MIN_KEY_BYTES:
        raise WebhookSignatureError(f"a webhook secret holds at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return SigningKey(key)


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """What is signed: ``{id}.{timestamp}.{body}``, the body byte for byte as sent."""
    if "." in msg_id:
        # The id and timestamp are delimited by '.', so an id holding one could forge another split.
        raise ValueError(f"msg_id must not contain '.', got {msg_id!r}")
    return b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)


def sign(keys: Iterable[SigningKey], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated, newest key first."""
    content = signed_content(msg_id, timestamp, body)
    signatures = [f"{SIGNATURE_VERSION},{_b64(_mac(key, content))}" for key in keys]
    if not signatures:
        raise ValueError("sign needs at least one key")
    return " ".join(signatures)


def headers(keys: Iterable[SigningKey], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt at ``timestamp`` (unix seconds)."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(keys, msg_id, timestamp, body),
    }


def verify(
    keys: Iterable[SigningKey],
    received: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> str:
    """Check a received webhook as a receiver does; return its ``webhook-id``.

    Raises :class:`WebhookSignatureError` when a header is missing, the timestamp is further than
    ``tolerance_s`` from ``now`` (a replay, or a clock gone wrong) or no ``v1`` signature matches
    any of ``keys``. Comparisons are constant-time.
    """
    lowered = {name.lower(): value for name, value in received.items()}
    msg_id, stamp, listed = (lowered.get(h) for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not (msg_id and stamp and listed):
        raise WebhookSignatureError(f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookSignatureError(f"{TIMESTAMP_HEADER} is not unix seconds: {stamp!r}") from None
    if timestamp < now - tolerance_s:
        raise WebhookSignatureError(f"{TIMESTAMP_HEADER} {timestamp} is too old")
    if timestamp > now + tolerance_s:
        raise WebhookSignatureError(f"{TIMESTAMP_HEADER} {timestamp} is too new")
    try:
        content = signed_content(msg_id, timestamp, body)
    except ValueError as exc:
        raise WebhookSignatureError(str(exc)) from None
    expected = [_mac(key, content) for key in keys]
    matched = False
    for entry in listed.split(" "):
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue  # v1a (Ed25519) and versions to come are not ours to judge here
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        for mac in expected:
            matched |= hmac.compare_digest(mac, given)  # no early exit: every pair is compared
    if not matched:
        raise WebhookSignatureError("no signature matches")
    return msg_id


def _mac(key: SigningKey, content: bytes) -> bytes:
    return hmac.new(key.key, content, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
