"""The OpenAPI document tells the truth about submissions: it accepts a body exactly when the gateway does."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.exceptions import InvalidRequest
from gateway.openapi import openapi_document
from gateway.settings import GatewaySettings
from gateway.validation import parse_job, parse_story
from ops.runtime.config import Secret
from schemas.records import TaskType

BASE = GatewaySettings(
    kafka_bootstrap_servers="unused:9092",
    mongodb_url=Secret("mongodb://unused"),
    mongodb_database="unused",
    topic_prefix="t.",
    output_dir=Path("/nonexistent"),
)
VIDEO, IMAGE, AUDIO = TaskType.TEXT_TO_VIDEO, TaskType.IMAGE_TO_VIDEO, TaskType.TEXT_TO_AUDIO
CONFIGS = {
    "default only": {"default": frozenset({VIDEO})},
    "every kind": {
        "default": frozenset({VIDEO}),
        "i2v": frozenset({IMAGE}),
        "voice": frozenset({AUDIO}),
        "sim": frozenset(TaskType),
    },
    "default reconfigured to audio": {"default": frozenset({AUDIO}), "wan": frozenset({VIDEO})},
}
# Each field omitted, or each value, including ones the gateway refuses.
MODELS = (None, "default", "i2v", "voice", "sim", "wan", "nope")
TASK_TYPES = (None, *(t.value for t in TaskType))


def request_schemas(settings: GatewaySettings) -> dict[str, Any]:
    document = openapi_document(settings)
    components = document["components"]

    def schema(path: str, media_type: str) -> Any:
        content = document["paths"][path]["post"]["requestBody"]["content"]
        if media_type not in content:
            return None
        return Draft202012Validator({**content[media_type]["schema"], "components": components})

    return {
        "story": schema("/v1/stories", "application/json"),
        "job": schema("/v1/jobs", "application/json"),
        "form": schema("/v1/jobs", "multipart/form-data"),
    }


def accepted(check: Any) -> bool:
    try:
        check()
    except InvalidRequest:
        return False
    return True


@pytest.mark.parametrize("config", CONFIGS)
def test_the_documented_request_bodies_are_the_accepted_ones(config):
    settings = dataclasses.replace(BASE, pool_capabilities=CONFIGS[config])
    schemas = request_schemas(settings)
    for model, task_type in itertools.product(MODELS, TASK_TYPES):
        fields = {"model": model, "task_type": task_type}
        fields = {name: value for name, value in fields.items() if value is not None}
        story = {"story_text": "a fox in the snow", **fields}
        job = {"prompt": "a fox in the snow", **fields}
        cases = {
            "story": (story, lambda body=story: parse_story(body, settings)),
            "job": (job, lambda body=job: parse_job(body, settings, has_image=False)),
            "form": ({**job, "image": "PNG"}, lambda body=job: parse_job(body, settings, has_image=True)),
        }
        for name, (body, check) in cases.items():
            validator = schemas[name]
            documented = validator is not None and validator.is_valid(body)
            assert documented == accepted(check), (config, name, body)


def test_image_uploads_are_documented_only_where_a_pool_runs_image_to_video():
    only_video = request_schemas(dataclasses.replace(BASE, pool_capabilities=CONFIGS["default only"]))
    assert only_video["form"] is None
    assert request_schemas(dataclasses.replace(BASE, pool_capabilities=CONFIGS["every kind"]))["form"]


def test_start_within_s_is_documented_with_its_bounds():
    document = openapi_document(dataclasses.replace(BASE, task_ttl_s=600, max_task_ttl_s=3600))
    content = document["paths"]["/v1/stories"]["post"]["requestBody"]["content"]
    field = content["application/json"]["schema"]["properties"]["start_within_s"]
    assert (field["type"], field["minimum"], field["maximum"]) == ("integer", 1, 3600)
    assert "default 600" in field["description"] and "submitted_at + start_within_s" in field["description"]
