"""The HTTP client's pure parts: request bodies from files or text, and one-line API errors."""

from __future__ import annotations

import json

import httpx
import pytest

from ops.client import ApiError, ClientSettings, _raise_for_error, story_body_from
from ops.config import Env
from ops.exceptions import ConfigError


def test_body_from_sample_json_file(tmp_path):
    path = tmp_path / "fox.json"
    path.write_text(json.dumps({"title": "Fox", "tier": "premium", "story": {"scenes": [{"prompt": "a fox"}]}}))
    assert story_body_from(str(path), None, "default", None) == {
        "title": "Fox", "scenes": [{"prompt": "a fox"}], "model": "default"}


def test_body_from_text_file_and_from_text(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("Once upon a time.")
    assert story_body_from(str(path), "T", None, "text_to_video") == {
        "story_text": "Once upon a time.", "title": "T", "task_type": "text_to_video"}
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
        _raise_for_error(httpx.Response(429, json={"error": {"code": "rate_limited", "message": "slow down"}},
                                        headers={"Retry-After": "7"}))
    with pytest.raises(ApiError, match="HTTP 502 bad gateway"):
        _raise_for_error(httpx.Response(502, text="bad gateway"))
    _raise_for_error(httpx.Response(202, json={}))


def test_missing_api_key_names_the_variable():
    with pytest.raises(ConfigError, match="STOREE_API_KEY is not set"):
        ClientSettings.from_env(Env({}))
    settings = ClientSettings.from_env(Env({"STOREE_API_KEY": "sk_x", "STOREE_URL": "http://h:1/"}))
    assert settings.url == "http://h:1" and "sk_x" not in repr(settings)
