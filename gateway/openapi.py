"""The OpenAPI 3.1 document of the gateway, built by hand from the same limits the validation enforces.

Kept next to, not inside, the routes: the document is one readable value, and the schemathesis test in
``tests/gateway`` fuzzes the app from it, so a rule that drifts from the code shows up there.
"""

from __future__ import annotations

from typing import Any

from gateway.settings import GatewaySettings
from gateway.status import MAX_PAGE
from gateway.submit import IMAGE_TYPES
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


def _common(settings: GatewaySettings) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    return {
        "title": {**text, "maxLength": settings.max_title_chars},
        "task_type": {"type": "string", "enum": [t.value for t in TaskType]},
        "model": {"type": "string", "enum": list(settings.pools), "description": "the model pool"},
        "params": _ref("GenerationParams"),
        "start_within_s": {
            "type": "integer",
            "minimum": 1,
            "maximum": settings.max_task_ttl_s,
            "description": f"start-by deadline in seconds; default {settings.task_ttl_s}",
        },
        "webhook_url": {
            "type": "string",
            "format": "uri",
            "maxLength": 2048,
            "description": "http(s) URL called when the story ends; private addresses are refused",
        },
    }


def openapi_document(settings: GatewaySettings) -> dict[str, Any]:
    common = _common(settings)
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
        "description": "same key and account: same story, published once",
    }
    submit_responses = {
        "202": {"description": "accepted and on Kafka", "content": {JSON: {"schema": _ref("Accepted")}}},
        "400": _error("malformed body"),
        "409": _error("Idempotency-Key conflict"),
        "413": _error("body too large"),
        "415": _error("not JSON"),
        "422": _error("invalid field"),
        "503": _error("Kafka unavailable; nothing recorded; see Retry-After"),
        **auth_errors,
    }
    story_request = {
        "type": "object",
        "additionalProperties": False,
        "description": "exactly one of story_text and scenes",
        "oneOf": [{"required": ["story_text"]}, {"required": ["scenes"]}],
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
        "properties": {**common, "prompt": prompt},
    }
    job_form = {
        "type": "object",
        "required": ["prompt", "image"],
        "properties": {
            **{k: v for k, v in common.items() if k != "params"},
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
                    "content": {JSON: {"schema": job_request}, "multipart/form-data": {"schema": job_form}},
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
