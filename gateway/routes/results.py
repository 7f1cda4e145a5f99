"""The result endpoints: a task's clip as a file, a story's clips as a ZIP streamed as it is written.

Which files, and how the archive is written, is :mod:`gateway.clips`.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from gateway.auth import authenticate
from gateway.clips import story_clips, task_clip, zip_stream
from gateway.exceptions import InvalidRequest, NotReady
from gateway.state import GatewayState


async def task_result(request: Request) -> Response:
    """The video or audio file of a finished task (``?index=`` picks among several outputs)."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    raw = request.query_params.get("index", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        raise InvalidRequest("index must be a non-negative integer", field="index")
    task = await state.jobs.task(principal.account_id, request.path_params["task_id"])
    clip = task_clip(state.store, task, int(raw))
    if clip is None:
        raise NotReady(f"task {task['_id']!r} has no output {raw} (status {task.get('status')})")
    return FileResponse(clip.path, media_type=clip.media_type, filename=clip.name)


async def story_result(request: Request) -> Response:
    """A ZIP of every finished clip of a story, streamed as it is written."""
    state: GatewayState = request.app.state.gateway
    principal = await authenticate(request)
    story = await state.jobs.story(principal.account_id, request.path_params["story_id"])
    clips = await asyncio.to_thread(story_clips, state.store, story)
    if not clips:
        raise NotReady(f"story {story['_id']!r} has no finished clips yet (status {story.get('status')})")
    disposition = f'attachment; filename="story-{story["_id"]}.zip"'
    return StreamingResponse(
        zip_stream(clips), media_type="application/zip", headers={"Content-Disposition": disposition}
    )
