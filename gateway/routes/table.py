"""Every operation of the gateway, once: its method, path and handler, and what the OpenAPI document says.

``gateway.app`` builds its Starlette routes from :data:`OPERATIONS` and ``gateway.openapi`` the document's
``paths``, so a route cannot be served without being documented, or documented without being served.
Schemas shared by several operations, and those built from the limits, are in ``gateway.openapi_schemas``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.jobs import MAX_PAGE
from gateway.openapi_schemas import (
    AUTH_ERRORS,
    JSON,
    SUBMIT_RESPONSES,
    error,
    idempotency_key,
    job_body,
    json_object,
    path_id,
    story_body,
)
from gateway.routes import events, reads, results, submit, system
from gateway.settings import GatewaySettings
from schemas.view import StoryStatus

Handler = Callable[[Request], Awaitable[Response]]
# An OpenAPI object as a value, or built from the settings where it documents their limits or pools.
Doc = Mapping[str, Any] | Callable[[GatewaySettings], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: the handler that answers it and the OpenAPI facts about it."""

    method: str
    path: str
    handler: Handler
    summary: str
    responses: Mapping[str, Any]
    secured: bool = False  # needs an API key (``Authorization: Bearer`` or ``X-API-Key``)
    parameters: tuple[Doc, ...] = ()
    request_body: Doc | None = None

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])


def resolve(doc: Doc, settings: GatewaySettings) -> Mapping[str, Any]:
    """``doc`` as a value for these settings."""
    return doc(settings) if callable(doc) else doc


_CANCEL_BODY = {
    "required": False,
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
            }
        }
    },
}
_EVENT_STREAM = {
    "200": {
        "description": (
            "Server-Sent Events: `snapshot` (the story GET's JSON; only without Last-Event-ID), then one "
            "event per task event of the story as it happens (`task.started`, `task.progress`, "
            "`task.completed`, `task.failed`, `task.expired`, `story.cancelled`, `story.completed`), each "
            "with id `<partition>-<offset>` and its fields as JSON data; a `: keep-alive` comment every "
            "SSE_KEEPALIVE seconds; the stream ends after `story.completed`"
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    "204": {"description": "resumed after the story ended: nothing more will come"},
    "404": error("no such story for this account"),
    "422": error("a Last-Event-ID this stream never sent, or too far behind to replay"),
    "503": error("Kafka unavailable"),
    **AUTH_ERRORS,
    "429": error("rate limited, or too many open streams for this account; see Retry-After"),
}
_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "description": "resume after this event: its story events since then follow, without a snapshot",
    "schema": {"type": "string", "pattern": "^[0-9]+-(-1|[0-9]+)$"},
}


def _retry_body(settings: GatewaySettings) -> Mapping[str, Any]:
    window = {"type": "integer", "minimum": 1, "maximum": settings.max_task_ttl_s}
    doc = "seconds the retried tasks have to start (default: as long as the first run had)"
    return {
        "required": False,
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"start_within_s": {**window, "description": doc}},
                }
            }
        },
    }


_LIST_QUERY = (
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": [s.value for s in StoryStatus]}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/v1/stories",
        submit.create_story,
        "Submit a story",
        SUBMIT_RESPONSES,
        secured=True,
        parameters=(idempotency_key,),
        request_body=story_body,
    ),
    Operation(
        "GET",
        "/v1/stories",
        reads.list_stories,
        "List the caller's stories, newest first",
        {"200": json_object("a page"), "422": error("invalid query parameter"), **AUTH_ERRORS},
        secured=True,
        parameters=_LIST_QUERY,
    ),
    Operation(
        "POST",
        "/v1/jobs",
        submit.create_job,
        "Submit one prompt (multipart with an image for image_to_video)",
        SUBMIT_RESPONSES,
        secured=True,
        parameters=(idempotency_key,),
        request_body=job_body,
    ),
    Operation(
        "GET",
        "/v1/stories/{story_id}",
        reads.get_story,
        "A story's status, tasks, timings, queue position and outputs",
        {"200": json_object("the story"), "404": error("no such story for this account"), **AUTH_ERRORS},
        secured=True,
        parameters=(path_id("story_id"),),
    ),
    Operation(
        "GET",
        "/v1/stories/{story_id}/events",
        events.story_events,
        "Follow a story live (Server-Sent Events, pushed from the log; Last-Event-ID resumes)",
        _EVENT_STREAM,
        secured=True,
        parameters=(path_id("story_id"), _LAST_EVENT_ID),
    ),
    Operation(
        "POST",
        "/v1/stories/{story_id}/cancel",
        submit.cancel_story,
        "Cancel a story; finished clips stay",
        {
            "202": {"description": "cancellation published"},
            "404": error("no such story"),
            "409": error("already finished"),
            "503": error("Kafka unavailable"),
            **AUTH_ERRORS,
        },
        secured=True,
        parameters=(path_id("story_id"),),
        request_body=_CANCEL_BODY,
    ),
    Operation(
        "POST",
        "/v1/stories/{story_id}/retry",
        submit.retry_story,
        "Run a failed story's failed and expired tasks again, as its next run",
        {
            "202": json_object("retry published: `retry` (the run's number), `task_ids` (requested again)"),
            "404": error("no such story"),
            "409": error("not failed (open, completed, cancelled), failed before any task, out of retries"),
            "422": error("invalid start_within_s"),
            "503": error("Kafka unavailable"),
            **AUTH_ERRORS,
        },
        secured=True,
        parameters=(path_id("story_id"),),
        request_body=_retry_body,
    ),
    Operation(
        "GET",
        "/v1/stories/{story_id}/result",
        results.story_result,
        "A ZIP of every finished clip",
        {
            "200": {"description": "ZIP", "content": {"application/zip": {}}},
            "404": error("no such story"),
            "409": error("no clips yet"),
            **AUTH_ERRORS,
        },
        secured=True,
        parameters=(path_id("story_id"),),
    ),
    Operation(
        "GET",
        "/v1/tasks/{task_id}",
        reads.get_task,
        "A task's status, timings, queue position and outputs",
        {"200": json_object("the task"), "404": error("no such task for this account"), **AUTH_ERRORS},
        secured=True,
        parameters=(path_id("task_id"),),
    ),
    Operation(
        "GET",
        "/v1/tasks/{task_id}/result",
        results.task_result,
        "The task's video or audio file",
        {
            "200": {"description": "the file"},
            "404": error("no such task"),
            "409": error("no output yet"),
            "422": error("bad index"),
            **AUTH_ERRORS,
        },
        secured=True,
        parameters=(
            path_id("task_id"),
            {"name": "index", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        ),
    ),
    Operation(
        "GET",
        "/v1/schemas",
        system.schemas,
        "Every Avro event schema with its fingerprint",
        {"200": json_object("schemas")},
        parameters=({"name": "history", "in": "query", "schema": {"type": "boolean"}},),
    ),
    Operation("GET", "/healthz", system.healthz, "Alive", {"200": {"description": "alive"}}),
    Operation(
        "GET",
        "/readyz",
        system.readyz,
        "Kafka and MongoDB reachable",
        {"200": {"description": "ready"}, "503": {"description": "not ready"}},
    ),
    Operation(
        "GET",
        "/metrics",
        system.metrics,
        "Prometheus metrics",
        {"200": {"description": "text exposition", "content": {"text/plain": {}}}},
    ),
    Operation("GET", "/openapi.json", system.openapi, "This document", {"200": {"description": "OpenAPI"}}),
)
