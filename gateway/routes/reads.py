"""The read endpoints: a story, a task, and the caller's stories, all from the job view."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.auth import authenticate
from gateway.exceptions import InvalidRequest
from gateway.jobs import DEFAULT_PAGE, MAX_PAGE
from gateway.representation import story_body, story_summary, task_body
from gateway.state import GatewayState
from schemas.view import StoryStatus, TaskStatus

LIST_PARAMS = frozenset({"status", "limit", "cursor"})


async def get_story(request: Request) -> JSONResponse:
    """Status, progress, timings and queue position of a story, with every task and output link, and
    where its webhooks stand when it has a ``webhook_url``."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    story = await state.jobs.story(principal.account_id, request.path_params["story_id"])
    tasks = await state.jobs.tasks_of(principal.account_id, story["_id"])
    # The story waits as long as its earliest waiting task does.
    waiting = [t for t in tasks if t.get("status") in (TaskStatus.QUEUED, TaskStatus.BATCHED)]
    first = min(waiting, key=lambda t: t.get("queued_at") or 0, default=None)
    position = await state.jobs.queue_position(first) if first is not None else None
    deliveries: list[dict[str, Any]] = []
    if story.get("callback_url"):
        deliveries = await state.jobs.webhook_deliveries(principal.account_id, story["_id"])
    return JSONResponse(story_body(story, tasks, position, deliveries))


async def get_task(request: Request) -> JSONResponse:
    """One task's state, timings, queue position while it waits, outputs and error."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    task = await state.jobs.task(principal.account_id, request.path_params["task_id"])
    return JSONResponse(task_body(task, await state.jobs.queue_position(task)))


async def list_stories(request: Request) -> JSONResponse:
    """The caller's stories, newest first, ``limit`` per page; ``next_cursor`` fetches the next page."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    query = request.query_params
    unknown = sorted(set(query) - LIST_PARAMS)
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    status = None
    if "status" in query:
        try:
            status = StoryStatus(query["status"])
        except ValueError:
            raise InvalidRequest(
                f"status must be one of {[s.value for s in StoryStatus]}", field="status"
            ) from None
    limit = DEFAULT_PAGE
    if "limit" in query:
        raw = query["limit"]
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_PAGE}", field="limit")
        limit = int(raw)
    page = await state.jobs.page(principal.account_id, status=status, limit=limit, cursor=query.get("cursor"))
    return JSONResponse(
        {"stories": [story_summary(doc) for doc in page.stories], "next_cursor": page.next_cursor}
    )
