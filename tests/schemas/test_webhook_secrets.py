"""Webhook secrets: their shape, and what a rotation keeps, retires and drops."""

from __future__ import annotations

import base64

import pytest

from schemas.webhook_secrets import generate_secret, live, new_entry, rotated

HOUR_MS = 3_600_000


def test_a_secret_is_whsec_and_base64_of_random_bytes():
    one, two = generate_secret(), generate_secret()
    assert one.startswith("whsec_") and one != two
    assert len(base64.b64decode(one.removeprefix("whsec_"))) == 32
    assert len(base64.b64decode(generate_secret(64).removeprefix("whsec_"))) == 64
    with pytest.raises(ValueError, match="nbytes"):
        generate_secret(16)


def test_a_rotation_puts_the_new_secret_first_and_retires_the_live_ones_after_the_grace():
    entries = [new_entry("whsec_old", 1_000)]
    after = rotated(entries, "whsec_new", now_ms=5_000, grace_ms=HOUR_MS)
    assert after == [
        {"secret": "whsec_new", "created_at": 5_000, "retires_at": None},
        {"secret": "whsec_old", "created_at": 1_000, "retires_at": 5_000 + HOUR_MS},
    ]
    # Both sign during the grace window; only the new one after it.
    assert [e["secret"] for e in live(after, 5_000 + HOUR_MS - 1)] == ["whsec_new", "whsec_old"]
    assert [e["secret"] for e in live(after, 5_000 + HOUR_MS)] == ["whsec_new"]


def test_a_rotation_drops_retired_secrets_and_never_lengthens_a_retiring_one():
    entries = [
        {"secret": "whsec_b", "created_at": 2_000, "retires_at": 9_000},  # retiring soon
        {"secret": "whsec_a", "created_at": 1_000, "retires_at": 3_000},  # already retired
    ]
    after = rotated(entries, "whsec_c", now_ms=4_000, grace_ms=HOUR_MS)
    assert [(e["secret"], e["retires_at"]) for e in after] == [("whsec_c", None), ("whsec_b", 9_000)]


def test_no_grace_ends_every_old_secret_at_once():
    entries = [new_entry("whsec_b", 2_000), {"secret": "whsec_a", "created_at": 1_000, "retires_at": 9_000}]
    after = rotated(entries, "whsec_c", now_ms=4_000, grace_ms=0)
    assert after == [new_entry("whsec_c", 4_000)]
    with pytest.raises(ValueError, match="grace"):
        rotated(entries, "whsec_d", now_ms=4_000, grace_ms=-1)
