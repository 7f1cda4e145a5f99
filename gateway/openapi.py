"""The OpenAPI 3.1 document of the gateway, built by hand from the same limits the validation enforces.

Kept next to, not inside, the routes: the document is one readable value, and the schemathesis test in
``tests/gateway`` fuzzes the app from it, so a rule that drifts from the code shows up there.
"""

from __future__ import annotations

from typing import Any

from gateway.jobs import MAX_PAGE
from gateway.settings import GatewaySettings
from gateway.uploads import IMAGE_TYPES
from gateway.validation import AUDIO_RANGES, MAX_SEED, VIDEO_RANGES
from schemas.records import TaskType
from schemas.view import StoryStatus

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _params_schema(settings: GatewaySettings) -> dict[str, Any]:
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
        "params": _ref("GenerationParams"),
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
            "description": "http(s) URL called when the story ends; private addresses are refused",
        },
    }


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


def openapi_document(settings: GatewaySettings) -> dict[str, Any]:
    text_types = (TaskType.TEXT_TO_VIDEO, TaskType.TEXT_TO_AUDIO)
    common = _common(settings, text_types)
    prompt = {"type": "string", "minLength": 1, "maxLength": settings.max_prompt_chars}
    auth_errors = {
        "401": _error("missing or invalid API key"),
        "429": _error("rate limited; see Retry-After"),
    }
    id_param = {"in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "same key and account within the key's lifetime (IDEMPOTENCY_TTL, "
        f"{settings.idempotency_ttl_s} s from acceptance): the same story, published once; once the key "
        "has expired it starts a new story with a new story_id",
    }
    submit_responses = {
        "202": {"description": "accepted and on Kafka", "content": {JSON: {"schema": _ref("Accepted")}}},
        "400": _error("malformed body"),
        "409": _error("Idempotency-Key conflict"),
        "413": _error("body too large"),
        "415": _error("not JSON"),
        "422": _error("invalid field, or work no configured pool runs (field model or task_type)"),
        "503": _error("Kafka unavailable; nothing recorded; see Retry-After"),
        **auth_errors,
    }
    story_request = {
        "type": "object",
        "additionalProperties": False,
        "description": "exactly one of story_text and scenes; model and task_type a pair some pool runs "
        "(image_to_video takes an image: POST /v1/jobs)",
        "oneOf": [{"required": ["story_text"]}, {"required": ["scenes"]}],
        **_runnable(settings, text_types),
        "properties": {
            **{k: v for k, v in common.items()},
            "story_text": {"type": "string", "minLength": 1, "maxLength": settings.max_story_chars},
            "scenes": {
                "type": "array",
                "minItems": 1,
                "maxItems": settings.max_scenes,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["prompt"],
                    "properties": {"prompt": prompt},
                },
            },
        },
    }
    job_request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt"],
        "description": "model and task_type a pair some pool runs (image_to_video: send multipart)",
        "properties": {**common, "prompt": prompt},
        **_runnable(settings, text_types),
    }
    image_types = (TaskType.IMAGE_TO_VIDEO,)
    job_form = {
        "type": "object",
        "required": ["prompt", "image"],
        "description": "image_to_video: model must name a pool that runs it",
        **_runnable(settings, image_types),
        "properties": {
            **{k: v for k, v in _common(settings, image_types).items() if k != "params"},
            "prompt": prompt,
            "params": {"type": "string", "description": "GenerationParams as JSON text"},
            "image": {
                "type": "string",
                "format": "binary",
                "description": f"{', '.join(IMAGE_TYPES)}; at most {settings.max_image_bytes} bytes",
            },
        },
    }
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    paths: dict[str, Any] = {
        "/v1/stories": {
            "post": {
                "summary": "Submit a story",
                "security": secured,
                "parameters": [idempotency],
                "requestBody": {"required": True, "content": {JSON: {"schema": story_request}}},
                "responses": submit_responses,
            },
            "get": {
                "summary": "List the caller's stories, newest first",
                "security": secured,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": [s.value for s in StoryStatus]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "a page", "content": {JSON: {"schema": {"type": "object"}}}},
                    "422": _error("invalid query parameter"),
                    **auth_errors,
                },
            },
        },
        "/v1/jobs": {
            "post": {
                "summary": "Submit one prompt (multipart with an image for image_to_video)",
                "security": secured,
                "parameters": [idempotency],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": job_request},
                        # Only when some pool runs image_to_video; the gateway refuses the upload otherwise.
                        **({"multipart/form-data": {"schema": job_form}} if "anyOf" in job_form else {}),
                    },
                },
                "responses": submit_responses,
            },
        },
        "/v1/stories/{story_id}": {
            "get": {
                "summary": "A story's status, tasks, timings, queue position and outputs",
                "security": secured,
                "parameters": [{"name": "story_id", **id_param}],
                "responses": {
                    "200": {"description": "the story", "content": {JSON: {"schema": {"type": "object"}}}},
                    "404": _error("no such story for this account"),
                    **auth_errors,
                },
            }
        },
        "/v1/stories/{story_id}/cancel": {
            "post": {
                "summary": "Cancel a story; finished clips stay",
                "security": secured,
                "parameters": [{"name": "story_id", **id_param}],
                "requestBody": {
                    "required": False,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "reason": {"type": "string", "minLength": 1, "maxLength": 500}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": {"description": "cancellation published"},
                    "404": _error("no such story"),
                    "409": _error("already finished"),
                    "503": _error("Kafka unavailable"),
                    **auth_errors,
                },
            }
        },
        "/v1/stories/{story_id}/result": {
            "get": {
                "summary": "A ZIP of every finished clip",
                "security": secured,
                "parameters": [{"name": "story_id", **id_param}],
                "responses": {
                    "200": {"description": "ZIP", "content": {"application/zip": {}}},
                    "404": _error("no such story"),
                    "409": _error("no clips yet"),
                    **auth_errors,
                },
            }
        },
        "/v1/tasks/{task_id}": {
            "get": {
                "summary": "A task's status, timings, queue position and outputs",
                "security": secured,
                "parameters": [{"name": "task_id", **id_param}],
                "responses": {
                    "200": {"description": "the task", "content": {JSON: {"schema": {"type": "object"}}}},
                    "404": _error("no such task for this account"),
                    **auth_errors,
                },
            }
        },
        "/v1/tasks/{task_id}/result": {
            "get": {
                "summary": "The task's video or audio file",
                "security": secured,
                "parameters": [
                    {"name": "task_id", **id_param},
                    {"name": "index", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": {"description": "the file"},
                    "404": _error("no such task"),
                    "409": _error("no output yet"),
                    "422": _error("bad index"),
                    **auth_errors,
                },
            }
        },
        "/v1/schemas": {
            "get": {
                "summary": "Every Avro event schema with its fingerprint",
                "parameters": [{"name": "history", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {
                    "200": {"description": "schemas", "content": {JSON: {"schema": {"type": "object"}}}}
                },
            }
        },
        "/healthz": {"get": {"summary": "Alive", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {
            "get": {
                "summary": "Kafka and MongoDB reachable",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition", "content": {"text/plain": {}}}},
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Storee gateway",
            "version": "1.0.0",
            "description": "Submit stories and prompts for AI video and audio generation and follow them.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                "GenerationParams": _params_schema(settings),
                "Accepted": {
                    "type": "object",
                    "required": ["story_id", "status", "links"],
                    "properties": {
                        "story_id": {"type": "string"},
                        "status": {"type": "string"},
                        "submitted_at": {"type": "integer"},
                        "task_id": {"type": "string"},
                        "links": {"type": "object"},
                    },
                },
                "Error": {
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
                },
            },
        },
    }
