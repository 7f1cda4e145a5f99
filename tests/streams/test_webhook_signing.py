"""Standard Webhooks signing: the spec's published vector, rotation, and every way verification refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from streams.webhook_signing import (
    SigningKey,
    WebhookSignatureError,
    generate_secret,
    headers,
    parse_secret,
    sign,
    signed_content,
    verify,
)

# The vector of the Standard Webhooks reference libraries (standard-webhooks/standard-webhooks,
# libraries/python/tests/test_webhooks.py, test_sign_function; the same in the Go, JS, PHP tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_700_000_000
KEY = parse_secret(VECTOR_SECRET)
OTHER = parse_secret("whsec_" + base64.b64encode(b"k" * 32).decode())


def test_the_published_vector_signs_exactly() -> None:
    assert sign([KEY], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_published_vector_by_hand() -> None:
    # Independently of sign(): HMAC-SHA256 keyed by the base64-decoded secret, over id.timestamp.body.
    key = base64.b64decode(VECTOR_SECRET.removeprefix("whsec_"))
    content = f"{VECTOR_ID}.{VECTOR_TIMESTAMP}.".encode() + VECTOR_BODY
    mac = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    assert "v1," + mac == VECTOR_SIGNATURE
    assert signed_content(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == content


def test_the_published_vector_verifies() -> None:
    received = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify([KEY], received, VECTOR_BODY, now=VECTOR_TIMESTAMP) == VECTOR_ID


def test_headers_are_the_three_standard_ones() -> None:
    sent = headers([KEY], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert sent == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_while_a_secret_rotates_both_sign_and_either_verifies() -> None:
    sent = headers([OTHER, KEY], "msg_1", NOW, b"{}")
    first, second = sent["webhook-signature"].split(" ")
    assert first.startswith("v1,") and second.startswith("v1,")
    assert verify([KEY], sent, b"{}", now=NOW) == "msg_1"  # a receiver still on the old secret
    assert verify([OTHER], sent, b"{}", now=NOW) == "msg_1"  # one already on the new one


def test_unknown_versions_and_garbage_entries_are_skipped() -> None:
    good = sign([KEY], "msg_1", NOW, b"{}")
    listed = f"v1a,{'A' * 88} v2,abc v1,not-base64!! v1 {good}"
    assert verify([KEY], {**headers([KEY], "msg_1", NOW, b"{}"), "webhook-signature": listed}, b"{}", now=NOW)


def test_header_names_are_case_insensitive() -> None:
    sent = {name.upper(): value for name, value in headers([KEY], "msg_1", NOW, b"{}").items()}
    assert verify([KEY], sent, b"{}", now=NOW) == "msg_1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda h, b: ({**h, "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}, b),
            "no signature",
        ),
        (lambda h, b: (h, b + b" "), "no signature"),  # one stray byte of body
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), "no signature"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b), "no signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
        (lambda h, b: ({**h, "webhook-timestamp": ""}, b), "missing"),
        (lambda h, b: ({**h, "webhook-timestamp": "hello"}, b), "not unix seconds"),
        (lambda h, b: ({**h, "webhook-id": "msg.2"}, b), "must not contain"),
    ],
)
def test_verification_refuses(change, reason) -> None:
    received, body = change(headers([KEY], "msg_1", NOW, b"{}"), b"{}")
    with pytest.raises(WebhookSignatureError, match=reason):
        verify([KEY], received, body, now=NOW)


def test_a_wrong_secret_does_not_verify() -> None:
    with pytest.raises(WebhookSignatureError, match="no signature"):
        verify([OTHER], headers([KEY], "msg_1", NOW, b"{}"), b"{}", now=NOW)


def test_the_timestamp_tolerance_is_five_minutes_either_way() -> None:
    sent = headers([KEY], "msg_1", NOW, b"{}")
    assert verify([KEY], sent, b"{}", now=NOW + 300)
    assert verify([KEY], sent, b"{}", now=NOW - 300)
    with pytest.raises(WebhookSignatureError, match="too old"):
        verify([KEY], sent, b"{}", now=NOW + 301)
    with pytest.raises(WebhookSignatureError, match="too new"):
        verify([KEY], sent, b"{}", now=NOW - 301)
    assert verify([KEY], sent, b"{}", now=NOW + 3600, tolerance_s=3600)


def test_generated_secrets_parse_and_are_random() -> None:
    one, two = generate_secret(), generate_secret()
    assert one.startswith("whsec_") and one != two
    assert len(parse_secret(one).key) == 32
    assert len(parse_secret(generate_secret(24)).key) == 24
    with pytest.raises(ValueError, match="nbytes"):
        generate_secret(16)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 24"),
    ],
)
def test_malformed_secrets_are_refused(secret: str, reason: str) -> None:
    with pytest.raises(WebhookSignatureError, match=reason):
        parse_secret(secret)


def test_unpadded_base64_is_accepted_like_the_reference_libraries() -> None:
    raw = base64.b64encode(b"x" * 25).decode()
    assert raw.endswith("=")
    assert parse_secret("whsec_" + raw.rstrip("=")) == parse_secret("whsec_" + raw)


def test_a_key_never_shows_in_repr() -> None:
    assert "MfKQ" not in repr(KEY) and repr(KEY) == "SigningKey(***)"
    assert SigningKey(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")) == KEY


def test_signing_needs_a_key_and_a_dotless_id() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        sign([], "msg_1", NOW, b"{}")
    with pytest.raises(ValueError, match="must not contain"):
        sign([KEY], "msg.1", NOW, b"{}")
