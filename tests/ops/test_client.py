"""The HTTP client's pure parts: request bodies from files or text, and one-line API errors."""

from __future__ import annotations

import json

import httpx
import pytest

from ops.client import ApiError, ClientSettings, _raise_for_error, send_politely, story_body_from
from ops.runtime.config import Env
from ops.runtime.exceptions import ConfigError


def test_body_from_sample_json_file(tmp_path):
    path = tmp_path / "fox.json"
    path.write_text(
        json.dumps({"title": "Fox", "tier": "premium", "story": {"scenes": [{"prompt": "a fox"}]}})
    )
    assert story_body_from(str(path), None, "default", None) == {
        "title": "Fox",
        "scenes": [{"prompt": "a fox"}],
        "model": "default",
    }


def test_body_from_text_file_and_from_text(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("Once upon a time.")
    assert story_body_from(str(path), "T", None, "text_to_video") == {
        "story_text": "Once upon a time.",
        "title": "T",
        "task_type": "text_to_video",
    }
    assert story_body_from("A fox runs.", None, None, None) == {"story_text": "A fox runs."}


def test_bad_json_file_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{nope")
    with pytest.raises(ApiError, match="broken.json is not valid JSON"):
        story_body_from(str(path), None, None, None)


def test_api_errors_become_one_line():
    body = {"error": {"code": "invalid", "message": "must be at most 2048", "field": "params.width"}}
    with pytest.raises(ApiError) as caught:
        _raise_for_error(httpx.Response(422, json=body))
    assert str(caught.value) == "HTTP 422 invalid: must be at most 2048 (field: params.width)"
    with pytest.raises(ApiError, match=r"HTTP 429 rate_limited: slow down; retry after 7s"):
        _raise_for_error(
            httpx.Response(
                429,
                json={"error": {"code": "rate_limited", "message": "slow down"}},
                headers={"Retry-After": "7"},
            )
        )
    with pytest.raises(ApiError, match="HTTP 502 bad gateway"):
        _raise_for_error(httpx.Response(502, text="bad gateway"))
    _raise_for_error(httpx.Response(202, json={}))


def test_missing_api_key_names_the_variable():
    with pytest.raises(ConfigError, match="STOREE_API_KEY is not set"):
        ClientSettings.from_env(Env({}))
    settings = ClientSettings.from_env(Env({"STOREE_API_KEY": "sk_x", "STOREE_URL": "http://h:1/"}))
    assert settings.url == "http://h:1" and "sk_x" not in repr(settings)


def _answers(*responses: httpx.Response):  # type: ignore[no-untyped-def]
    queue = list(responses)
    return lambda: queue.pop(0)


def test_reads_wait_as_retry_after_says_then_succeed():
    slept: list[float] = []
    send = _answers(
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(503, headers={"Retry-After": "0.5"}),
        httpx.Response(200, json={"ok": True}),
    )
    response = send_politely(send, sleep=slept.append)
    assert response.status_code == 200 and slept == [2.0, 0.5]


def test_reads_give_up_when_waiting_would_exceed_the_budget():
    slept: list[float] = []
    send = _answers(*[httpx.Response(429, headers={"Retry-After": "30"}) for _ in range(5)])
    response = send_politely(send, max_wait_s=70, sleep=slept.append)
    assert response.status_code == 429 and slept == [30.0, 30.0]


def test_other_errors_and_odd_retry_after_values():
    assert send_politely(_answers(httpx.Response(404)), sleep=pytest.fail).status_code == 404
    slept: list[float] = []
    send = _answers(
        httpx.Response(429, headers={"Retry-After": "soon"}), httpx.Response(429), httpx.Response(200)
    )
    assert send_politely(send, sleep=slept.append).status_code == 200
    assert slept == [1.0, 1.0]
