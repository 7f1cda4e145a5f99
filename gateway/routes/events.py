"""``GET /v1/stories/{story_id}/events``: a story's progress as Server-Sent Events, pushed from Kafka.

Without ``Last-Event-ID`` the stream opens with a ``snapshot`` event (the story GET's JSON); with one it
opens with the story's records after that position instead, read back from ``task.events``
(:func:`gateway.live.replay`), and no snapshot. Either way each later record of the story follows as it
reaches the process's fan-out (:class:`gateway.live.TaskEventFanOut`), once and in order, named by its
type (``task.progress``, ``story.completed``, ...) with its position as the event id. The stream ends
after ``story.completed`` (emitted for every ending: completed, failed, cancelled, expired), right after
the snapshot of a story that has already ended, after ``SSE_IDLE_TIMEOUT`` seconds without an event or
``SSE_MAX_DURATION`` in all, and when the client falls ``SSE_QUEUE_SIZE`` events behind; a client
reconnecting with ``Last-Event-ID`` then misses nothing. A reconnect once the story has ended and
everything was sent is answered ``204`` (an EventSource stops reconnecting).

The stream subscribes to the fan-out before it reads the snapshot or the log, so nothing falls between
the two: the subscription's start position splits the partition into what is read back and what comes
live. Events sent after a snapshot may already be reflected in it (the view trails the log); each is a
fact, so applying one twice changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.auth import authenticate
from gateway.exceptions import RateLimited
from gateway.live import Delivery, Subscription, replay
from gateway.representation import story_body
from gateway.sse import (
    SNAPSHOT,
    Cursor,
    StreamTimer,
    comment,
    event_data,
    event_name,
    frame,
    is_terminal,
    parse_event_id,
    retry_hint,
)
from gateway.state import GatewayState
from schemas.view import TERMINAL_STORY_STATUSES, TaskStatus

TERMINAL = {status.value for status in TERMINAL_STORY_STATUSES}
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def story_events(request: Request) -> Response:
    """Follow a story live as Server-Sent Events; ``Last-Event-ID`` resumes after that event."""
    state: GatewayState = request.app.state.gateway
    settings = state.settings
    principal = await authenticate(request)
    story_id = request.path_params["story_id"]
    fan_out = state.live
    limit = settings.sse_max_streams_per_account
    if fan_out.open_streams(principal.account_id) >= limit:
        raise RateLimited(
            f"at most {limit} open event streams per account (SSE_MAX_STREAMS_PER_ACCOUNT); close one first",
            retry_after=max(1, round(settings.sse_keepalive_s)),
            reason="streams",
        )
    resume = parse_event_id(request.headers.get("last-event-id"), partition=fan_out.partition_of(story_id))
    subscription = fan_out.subscribe(story_id, principal.account_id)
    try:
        story = await state.jobs.story(principal.account_id, story_id)
        if resume is None:
            body = await _snapshot(state, principal.account_id, story)
            opening = [frame(SNAPSHOT, body, subscription.seen)]
            cursor = Cursor(subscription.partition, subscription.seen.offset)
            ended = body["status"] in TERMINAL
        else:
            past = await asyncio.to_thread(
                replay,
                settings.kafka_bootstrap_servers,
                fan_out.topic,
                story_id,
                resume,
                max_records=settings.sse_replay_max_records,
                timeout_s=settings.sse_replay_timeout_s,
                codec=fan_out.codec,
            )
            cursor = Cursor(resume.partition, resume.offset)
            opening = [_event(delivery) for delivery in past if cursor.admit(delivery.position)]
            # The replay holds the resume point itself: a client whose last event was the story's end is
            # told so (204). A story the view says has ended has its story.completed in the replay or
            # already sent, since the materializer writes the view only after producing it.
            ended = any(is_terminal(d.event) for d in past) or story.get("status") in TERMINAL
            if ended and not opening:
                fan_out.unsubscribe(subscription)
                return Response(status_code=204)
    except BaseException:
        fan_out.unsubscribe(subscription)
        raise
    stream = _stream(subscription, opening, cursor, ended, settings_timer(state))
    return EventStreamResponse(stream, on_close=lambda: fan_out.unsubscribe(subscription))


def settings_timer(state: GatewayState) -> StreamTimer:
    settings = state.settings
    return StreamTimer(
        settings.sse_keepalive_s, settings.sse_idle_timeout_s, settings.sse_max_duration_s, time.monotonic()
    )


async def _snapshot(state: GatewayState, account_id: str, story: dict) -> dict:
    """The story GET's body (``routes.reads.get_story``), read after subscribing."""
    story = await state.jobs.story(account_id, story["_id"])
    tasks = await state.jobs.tasks_of(account_id, story["_id"])
    waiting = [t for t in tasks if t.get("status") in (TaskStatus.QUEUED, TaskStatus.BATCHED)]
    first = min(waiting, key=lambda t: t.get("queued_at") or 0, default=None)
    position = await state.jobs.queue_position(first) if first is not None else None
    deliveries: list[dict] = []  # as the story GET: "webhook" is null without a webhook_url
    if story.get("callback_url"):
        deliveries = await state.jobs.webhook_deliveries(account_id, story["_id"])
    return story_body(story, tasks, position, deliveries)


def _event(delivery: Delivery) -> bytes:
    return frame(event_name(delivery.event), event_data(delivery.event), delivery.position)


async def _stream(
    subscription: Subscription, opening: list[bytes], cursor: Cursor, ended: bool, timer: StreamTimer
) -> AsyncIterator[bytes]:
    yield retry_hint() + b"".join(opening)
    if ended:
        return
    last_event_at = timer.opened_at
    while True:
        wait, reason = timer.next(time.monotonic(), last_event_at)
        if reason is not None:
            yield comment(f"closing: {reason}; reconnect with Last-Event-ID to go on")
            return
        try:
            delivery = await asyncio.wait_for(subscription.queue.get(), timeout=wait)
        except TimeoutError:
            yield comment("keep-alive")
            continue
        if delivery is None:
            yield comment("closing: this stream fell behind; reconnect with Last-Event-ID to go on")
            return
        if not cursor.admit(delivery.position):
            continue
        last_event_at = time.monotonic()
        yield _event(delivery)
        if is_terminal(delivery.event):
            return


class EventStreamResponse(Response):
    """A ``text/event-stream`` answer that notices a client leaving while nothing is sent, and always
    calls ``on_close`` (the stream's slot and subscription are freed even if it never started)."""

    media_type = "text/event-stream"

    def __init__(self, chunks: AsyncIterator[bytes], *, on_close: Callable[[], None]) -> None:
        self.chunks = chunks
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
                    async for chunk in self.chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    group.cancel_scope.cancel()

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(watch_disconnect)
        except OSError:  # the client went away mid-send
            pass
        finally:
            self.on_close()
            await self.chunks.aclose()  # type: ignore[attr-defined]
