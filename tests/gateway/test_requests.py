"""Validation through HTTP: sizes, media types, uploads, headers, queries; all 4xx in the JSON error shape."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import consume

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def error_of(response, status):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "field"} and error["message"]
    return error


def test_rejected_requests_publish_nothing(make_gateway, catalog, kafka_bootstrap):
    gateway = make_gateway(max_body_bytes=2048, max_image_bytes=1024)
    headers = gateway.headers(gateway.account())
    post = gateway.client.post

    # Body size: declared and streamed (no Content-Length) both stop at the cap.
    assert (
        error_of(post("/v1/stories", headers=headers, json={"story_text": "x" * 3000}), 413)["code"]
        == "payload_too_large"
    )
    chunks = iter([b'{"story_text": "', b"x" * 3000, b'"}'])
    streamed = post("/v1/stories", headers={**headers, "Content-Type": "application/json"}, content=chunks)
    assert error_of(streamed, 413)["code"] == "payload_too_large"
    # Media type and syntax.
    assert error_of(post("/v1/stories", headers=headers, content=b"story"), 415)["field"] == "Content-Type"
    bad_json = post("/v1/stories", headers={**headers, "Content-Type": "application/json"}, content=b"{oops")
    assert error_of(bad_json, 400)["code"] == "malformed"
    # A rule from the validation table, through HTTP.
    assert error_of(post("/v1/stories", headers=headers, json={"scenes": []}), 422)["field"] == "scenes"
    # Idempotency-Key.
    long_key = {**headers, "Idempotency-Key": "k" * 256}
    assert (
        error_of(post("/v1/stories", headers=long_key, json={"story_text": "x"}), 422)["field"]
        == "Idempotency-Key"
    )
    # Webhooks (SSRF).
    ssrf = post(
        "/v1/stories", headers=headers, json={"story_text": "x", "webhook_url": "http://127.0.0.1:2375/"}
    )
    assert error_of(ssrf, 422)["field"] == "webhook_url"

    # Uploads.
    def job(files, **data):
        return post("/v1/jobs", headers=headers, data={"prompt": "p", **data}, files=files)

    assert error_of(job({"image": ("a.gif", b"GIF89a", "image/gif")}), 422)["field"] == "image"
    assert error_of(job({"image": ("a.png", b"not a png", "image/png")}), 422)["field"] == "image"
    assert error_of(job({"image": ("a.png", PNG + b"\x00" * 1024, "image/png")}), 413)["field"] == "image"
    assert (
        error_of(job({"image": ("a.png", PNG + b"\x00" * 100_000, "image/png")}), 413)["code"]
        == "payload_too_large"
    )  # past the whole body's cap
    assert error_of(job({"other": ("a.png", PNG, "image/png")}), 422)["field"] == "other"
    assert (
        error_of(job({"image": ("a.png", PNG, "image/png")}, start_within_s="soon"), 422)["field"]
        == "start_within_s"
    )
    assert error_of(job({"image": ("a.png", PNG, "image/png")}, params="{nope"), 400)["code"] == "malformed"
    assert error_of(job({"image": ("a.png", PNG, "image/png")}, colour="red"), 422)["field"] == "colour"
    no_image = post(
        "/v1/jobs",
        headers=headers,
        data={"prompt": "p", "task_type": "image_to_video"},
        files={"x": ("", b"", "application/octet-stream")},
    )
    assert no_image.status_code in (400, 422)
    assert consume(kafka_bootstrap, catalog.stories_submitted) == []


def test_query_and_path_rules(gateway):
    headers = gateway.headers(gateway.account())
    get = gateway.client.get
    assert error_of(get("/v1/stories", headers=headers, params={"limit": "0"}), 422)["field"] == "limit"
    assert error_of(get("/v1/stories", headers=headers, params={"limit": "101"}), 422)["field"] == "limit"
    assert error_of(get("/v1/stories", headers=headers, params={"limit": "ten"}), 422)["field"] == "limit"
    assert error_of(get("/v1/stories", headers=headers, params={"status": "done"}), 422)["field"] == "status"
    assert error_of(get("/v1/stories", headers=headers, params={"sort": "asc"}), 422)["field"] == "sort"
    assert (
        error_of(get("/v1/tasks/t:0/result", headers=headers, params={"index": "-1"}), 422)["field"]
        == "index"
    )
    assert error_of(get("/v1/nowhere"), 404)["code"] == "not_found"
    assert error_of(gateway.client.delete("/v1/stories"), 405)["code"] == "method_not_allowed"
    cancel = gateway.client.post("/v1/stories/x/cancel", headers=headers, json={"reason": "x", "why": "y"})
    assert cancel.status_code == 404  # ownership is checked before the body


def test_system_endpoints(gateway):
    assert gateway.client.get("/healthz").json() == {"status": "ok"}
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": "ok", "mongodb": "ok"}
    schemas = gateway.client.get("/v1/schemas").json()["schemas"]
    assert "storee.v1.StorySubmitted" in {s["fullname"] for s in schemas}
    document = gateway.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    routes = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    for route in gateway.client.app.routes:
        for method in route.methods - {"HEAD"}:
            assert (route.path, method) in routes


def test_metrics_count_requests_latency_and_rejections(gateway):
    headers = gateway.headers(gateway.account())
    gateway.client.post("/v1/stories", headers=headers, json={"story_text": "a story"})
    gateway.client.get("/v1/stories/missing", headers=headers)
    gateway.client.get("/v1/stories")
    text = gateway.client.get("/metrics").text
    assert 'storee_gateway_requests_total{method="POST",route="/v1/stories",status="202"} 1.0' in text
    assert (
        'storee_gateway_requests_total{method="GET",route="/v1/stories/{story_id}",status="404"} 1.0' in text
    )
    assert 'storee_gateway_request_seconds_count{method="POST",route="/v1/stories"} 1.0' in text
    assert 'storee_gateway_publish_seconds_count{event="StorySubmitted"} 1.0' in text
    assert 'storee_gateway_rejections_total{reason="unauthorized"} 1.0' in text
    assert 'storee_gateway_rejections_total{reason="not_found"} 1.0' in text
