"""The JSON Schemas of the OpenAPI document: request bodies, shared parameters and answers.

Built from the same limits the validation enforces (``gateway.validation``, the settings, the accepted
image types of ``gateway.uploads``), so the document and the code can only drift where the schemathesis
test in ``tests/gateway`` would notice. Each operation's own facts are in ``gateway.routes.table``.
"""

from __future__ import annotations

from typing import Any

from gateway.idempotency import MAX_KEY_CHARS
from gateway.settings import GatewaySettings
from gateway.uploads import IMAGE_TYPES
from gateway.validation import AUDIO_RANGES, MAX_SEED, VIDEO_RANGES
from schemas.records import TaskType
from schemas.webhooks import WebhookEvent

JSON = "application/json"
TEXT_TYPES = (TaskType.TEXT_TO_VIDEO, TaskType.TEXT_TO_AUDIO)
IMAGE_TASK_TYPES = (TaskType.IMAGE_TO_VIDEO,)
WEBHOOK_EVENTS_NEED_URL = {"webhook_events": ["webhook_url"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error(description: str) -> dict[str, Any]:
    """A response answered with the error body."""
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


def json_object(description: str) -> dict[str, Any]:
    """A 200 answered with a JSON object."""
    return {"description": description, "content": {JSON: {"schema": {"type": "object"}}}}


def path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


AUTH_ERRORS = {
    "401": error("missing or invalid API key"),
    "429": error("rate limited; see Retry-After"),
}
SUBMIT_RESPONSES = {
    "202": {"description": "accepted and on Kafka", "content": {JSON: {"schema": ref("Accepted")}}},
    "400": error("malformed body"),
    "409": error("Idempotency-Key conflict"),
    "413": error("body too large"),
    "415": error("not JSON"),
    "422": error("invalid field, or work no configured pool runs (field model or task_type)"),
    "503": error("Kafka unavailable; nothing recorded; see Retry-After"),
    **AUTH_ERRORS,
}
ACCEPTED = {
    "type": "object",
    "required": ["story_id", "status", "links"],
    "properties": {
        "story_id": {"type": "string"},
        "status": {"type": "string"},
        "submitted_at": {"type": "integer"},
        "task_id": {"type": "string"},
        "links": {"type": "object"},
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}


def idempotency_key(settings: GatewaySettings) -> dict[str, Any]:
    """The ``Idempotency-Key`` header of the submissions."""
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
        "description": "same key and account within the key's lifetime (IDEMPOTENCY_TTL, "
        f"{settings.idempotency_ttl_s} s from acceptance): the same story, published once; once the key "
        "has expired it starts a new story with a new story_id",
    }


def generation_params(settings: GatewaySettings) -> dict[str, Any]:
    """The ``GenerationParams`` component: every range ``check_params`` enforces."""
    ranges = {**VIDEO_RANGES, **AUDIO_RANGES}
    properties: dict[str, Any] = {}
    for name, (low, high) in ranges.items():
        integer = name not in ("guidance_scale", "audio_length_s")
        properties[name] = {"type": "integer" if integer else "number", "minimum": low, "maximum": high}
        if name in ("width", "height"):
            properties[name]["multipleOf"] = 8
    properties["seed"] = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEED}
    properties["negative_prompt"] = {"type": ["string", "null"], "maxLength": settings.max_prompt_chars}
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Generation parameters; video fields do not apply to text_to_audio, audio_length_s "
        "applies only to it. Omitted fields take the task type's defaults.",
        "properties": properties,
    }


def story_body(settings: GatewaySettings) -> dict[str, Any]:
    """The request body of ``POST /v1/stories``."""
    story = {
        "type": "object",
        "additionalProperties": False,
        "description": "exactly one of story_text and scenes; model and task_type a pair some pool runs "
        "(image_to_video takes an image: POST /v1/jobs)",
        "oneOf": [{"required": ["story_text"]}, {"required": ["scenes"]}],
        "dependentRequired": WEBHOOK_EVENTS_NEED_URL,
        **_runnable(settings, TEXT_TYPES),
        "properties": {
            **_common(settings, TEXT_TYPES),
            "story_text": {"type": "string", "minLength": 1, "maxLength": settings.max_story_chars},
            "scenes": {
                "type": "array",
                "minItems": 1,
                "maxItems": settings.max_scenes,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["prompt"],
                    "properties": {"prompt": _prompt(settings)},
                },
            },
        },
    }
    return {"required": True, "content": {JSON: {"schema": story}}}


def job_body(settings: GatewaySettings) -> dict[str, Any]:
    """The request body of ``POST /v1/jobs``: JSON, and multipart where some pool runs image_to_video."""
    job = {
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt"],
        "description": "model and task_type a pair some pool runs (image_to_video: send multipart)",
        "properties": {**_common(settings, TEXT_TYPES), "prompt": _prompt(settings)},
        "dependentRequired": WEBHOOK_EVENTS_NEED_URL,
        **_runnable(settings, TEXT_TYPES),
    }
    form = {
        "type": "object",
        "required": ["prompt", "image"],
        "description": "image_to_video: model must name a pool that runs it",
        "dependentRequired": WEBHOOK_EVENTS_NEED_URL,
        **_runnable(settings, IMAGE_TASK_TYPES),
        "properties": {
            **{k: v for k, v in _common(settings, IMAGE_TASK_TYPES).items() if k != "params"},
            "prompt": _prompt(settings),
            "params": {"type": "string", "description": "GenerationParams as JSON text"},
            "webhook_events": {
                "type": "string",
                "description": f"webhook events separated by commas ({_event_names()}); needs webhook_url",
            },
            "image": {
                "type": "string",
                "format": "binary",
                "description": f"{', '.join(IMAGE_TYPES)}; at most {settings.max_image_bytes} bytes",
            },
        },
    }
    content: dict[str, Any] = {JSON: {"schema": job}}
    if "anyOf" in form:  # only when some pool runs image_to_video; the gateway refuses the upload otherwise
        content["multipart/form-data"] = {"schema": form}
    return {"required": True, "content": content}


def _prompt(settings: GatewaySettings) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": settings.max_prompt_chars}


def _common(settings: GatewaySettings, task_types: tuple[TaskType, ...]) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    runs = "; ".join(
        f"{pool} runs {' and '.join(sorted(kinds))}" for pool, kinds in settings.pool_capabilities.items()
    )
    return {
        "title": {**text, "maxLength": settings.max_title_chars},
        "task_type": {
            "type": "string",
            "enum": [t.value for t in task_types],
            "description": f"default {task_types[0].value}; the model pool must run it",
        },
        "model": {
            "type": "string",
            "enum": list(settings.pools),
            "description": f"the model pool (omitted: {settings.pools[0]}); pools: {runs}",
        },
        "params": ref("GenerationParams"),
        "start_within_s": {
            "type": "integer",
            "minimum": 1,
            "maximum": settings.max_task_ttl_s,
            "description": "seconds within which every scene must start, else it expires (the deadline "
            f"is submitted_at + start_within_s); default {settings.task_ttl_s} (TASK_TTL), at most "
            f"{settings.max_task_ttl_s} (MAX_TASK_TTL)",
        },
        "webhook_url": {
            "type": "string",
            "format": "uri",
            "maxLength": 2048,
            "description": "http(s) URL called with signed webhooks (Standard Webhooks, the account's "
            "webhook secret) for the events of webhook_events; private addresses are refused",
        },
        "webhook_events": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": [event.value for event in WebhookEvent]},
            "description": "what webhook_url is called for: started (the first task started), progress "
            "(throttled task progress and task ends), completed (the story ended: completed, failed, "
            "expired or cancelled); default [completed]; needs webhook_url",
        },
    }


def _event_names() -> str:
    return ", ".join(event.value for event in WebhookEvent)


def _runnable(settings: GatewaySettings, task_types: tuple[TaskType, ...]) -> dict[str, Any]:
    """The model and task_type pairs some pool runs, as ``anyOf`` (``task_types[0]`` is the default).

    One branch per pool that runs any of ``task_types`` (``model`` given), and one for the default pool
    (``model`` omitted); where a pool does not run the default task type, ``task_type`` is required.
    With no branch at all, nothing can be accepted, which ``not: {}`` says.
    """
    default = task_types[0]
    branches: list[dict[str, Any]] = []
    for index, (pool, runs) in enumerate(settings.pool_capabilities.items()):
        kinds = [t.value for t in task_types if t in runs]
        if not kinds:
            continue
        required = [] if default in runs else ["task_type"]
        task_type = {"task_type": {"enum": kinds}}
        branches.append(
            {"properties": {"model": {"const": pool}, **task_type}, "required": ["model", *required]}
        )
        if index == 0:  # the default pool, when model is omitted
            branches.append({"not": {"required": ["model"]}, "properties": task_type, "required": required})
    return {"anyOf": branches} if branches else {"not": {}}
