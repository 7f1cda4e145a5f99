"""Kafka unreachable: 503 with Retry-After, and nothing recorded (no idempotency key, no upload)."""

from __future__ import annotations

import socket

import pytest

from gateway.idempotency import IDEMPOTENCY_KEYS
from schemas.records import TaskType

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def dead_address() -> str:
    """A loopback port nothing listens on (bound once to find it free, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_kafka_down_gives_503_and_records_nothing(make_gateway, mongo_db):
    gateway = make_gateway(
        kafka_bootstrap_servers=dead_address(),
        publish_timeout_s=1.0,
        unavailable_retry_after_s=7,
        pool_capabilities={
            "default": frozenset({TaskType.TEXT_TO_VIDEO}),
            "i2v": frozenset({TaskType.IMAGE_TO_VIDEO}),
        },
    )
    headers = gateway.headers(gateway.account(), **{"Idempotency-Key": "retry-me"})
    story = gateway.client.post("/v1/stories", headers=headers, json={"story_text": "a story"})
    assert story.status_code == 503, story.text
    assert story.headers["retry-after"] == "7"
    assert story.json()["error"]["code"] == "unavailable"
    job = gateway.client.post(
        "/v1/jobs",
        headers=headers,
        data={"prompt": "p", "model": "i2v"},
        files={"image": ("a.png", PNG, "image/png")},
    )
    assert job.status_code == 503
    assert mongo_db[IDEMPOTENCY_KEYS].count_documents({}) == 0
    uploads = gateway.settings.output_dir / "uploads"
    assert not uploads.exists() or not any(path.is_file() for path in uploads.rglob("*"))
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["kafka"] == "unreachable"
    assert 'storee_gateway_rejections_total{reason="unavailable"} 2.0' in gateway.client.get("/metrics").text


def test_a_retry_after_kafka_returns_is_accepted_under_the_same_key(make_gateway, catalog, kafka_bootstrap):
    """The key was not remembered while Kafka was down, so the retry publishes (a fresh story id)."""
    down = make_gateway(kafka_bootstrap_servers=dead_address(), publish_timeout_s=1.0)
    account = down.account()
    headers = down.headers(account, **{"Idempotency-Key": "k"})
    assert down.client.post("/v1/stories", headers=headers, json={"story_text": "s"}).status_code == 503
    up = make_gateway()  # the same database: another process, with Kafka reachable
    first = up.client.post("/v1/stories", headers=headers, json={"story_text": "s"})
    again = up.client.post("/v1/stories", headers=headers, json={"story_text": "s"})
    assert first.status_code == again.status_code == 202
    assert first.json()["story_id"] == again.json()["story_id"]
