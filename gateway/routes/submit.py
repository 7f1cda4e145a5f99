"""The write endpoints: ``POST /v1/stories``, ``POST /v1/jobs``, and ``POST /v1/stories/{story_id}/cancel``
and ``/retry``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.auth import authenticate
from gateway.exceptions import InvalidRequest, NotReady, UnsupportedMediaType
from gateway.idempotency import MAX_KEY_CHARS
from gateway.representation import story_links, task_links
from gateway.state import GatewayState
from gateway.story_publishing import Accepted, cancel, submit
from gateway.story_retries import retry
from gateway.uploads import read_job_form
from gateway.validation import Submission, number, parse_job, parse_json, parse_story, text
from gateway.webhooks import check_webhook_url
from schemas.ids import task_id
from schemas.view import TERMINAL_STORY_STATUSES


async def create_story(request: Request) -> JSONResponse:
    """Submit a story as ``story_text`` (split downstream) or explicit ``scenes``; answers 202."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    key = _idempotency_key(request)
    submission = parse_story(await _json_body(request), state.settings)
    await _check_webhook(state, submission)
    accepted = await submit(state, principal, submission, idempotency_key=key)
    return _accepted(accepted, None)


async def create_job(request: Request) -> JSONResponse:
    """Submit one prompt as a one-scene story: JSON, or multipart with an ``image`` for image_to_video."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    key = _idempotency_key(request)
    content_type = request.headers.get("content-type", "")
    upload = None
    if content_type.startswith("multipart/form-data"):
        fields, upload = await read_job_form(request, state.settings)
        submission = parse_job(fields, state.settings, has_image=upload is not None)
    else:
        submission = parse_job(await _json_body(request), state.settings, has_image=False)
    await _check_webhook(state, submission)
    accepted = await submit(state, principal, submission, idempotency_key=key, upload=upload)
    return _accepted(accepted, task_id(accepted.story_id, 0))


async def cancel_story(request: Request) -> JSONResponse:
    """Cancel a story: unfinished tasks stop, finished clips stay; answers 202."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    story = await state.jobs.story(principal.account_id, request.path_params["story_id"])
    reason = None
    if await request.body():
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"reason"}:
            raise InvalidRequest("the body may only hold 'reason'", field="reason")
        if body.get("reason") is not None:
            reason = text(body["reason"], "reason", 500)
    if story.get("status") in TERMINAL_STORY_STATUSES:
        raise NotReady(f"story is already {story.get('status')}; nothing to cancel")
    await cancel(state, principal, story["_id"], reason)
    return JSONResponse(
        {"story_id": story["_id"], "status": "cancelling", "links": story_links(story["_id"])},
        status_code=202,
    )


async def retry_story(request: Request) -> JSONResponse:
    """Run a failed story's failed and expired tasks again as its next run; answers 202."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    story = await state.jobs.story(principal.account_id, request.path_params["story_id"])
    start_within_s = None
    if await request.body():
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"start_within_s"}:
            raise InvalidRequest("the body may only hold 'start_within_s'", field="start_within_s")
        if body.get("start_within_s") is not None:
            limit = state.settings.max_task_ttl_s
            start_within_s = int(number(body["start_within_s"], "start_within_s", 1, limit, integer=True))
    retried = await retry(state, principal, story, start_within_s=start_within_s)
    return JSONResponse(
        {"story_id": retried.story_id, "status": "retrying", "retry": retried.retry,
         "task_ids": retried.task_ids, "links": story_links(retried.story_id)},
        status_code=202, headers={"Location": story_links(retried.story_id)["self"]},
    )  # fmt: skip


def _accepted(accepted: Accepted, first_task: str | None) -> JSONResponse:
    body: dict[str, Any] = {
        "story_id": accepted.story_id,
        "status": "queued",
        "submitted_at": accepted.submitted_at,
        "links": story_links(accepted.story_id),
    }
    if first_task is not None:
        body["task_id"] = first_task
        body["links"]["task"] = task_links(first_task, 0)["self"]
    headers = {"Location": body["links"]["self"]}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=202, headers=headers)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable characters", field="Idempotency-Key"
        )
    return key


async def _json_body(request: Request) -> Any:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json", field="Content-Type")
    return parse_json(await request.body())


async def _check_webhook(state: GatewayState, submission: Submission) -> None:
    if submission.webhook_url is not None:
        await check_webhook_url(submission.webhook_url, allow_private=state.settings.webhook_allow_private)
