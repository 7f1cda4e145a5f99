"""Publishing stories: a submission as StorySubmitted, once per Idempotency-Key; a cancel as StoryCancelled.

The answer is 202 only after Kafka acknowledged the event. When it did not, nothing stays behind: the
idempotency reservation is released and an uploaded image deleted, and the client gets 503 with
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from pymongo.errors import PyMongoError

from gateway.accounts import Principal
from gateway.exceptions import ServiceUnavailable
from gateway.idempotency import Earlier, Reservation, fingerprint, new_story_id
from gateway.publisher import PublishFailed
from gateway.state import GatewayState
from gateway.uploads import Upload
from gateway.validation import Submission
from schemas.events import StoryCancelled, StorySubmitted
from schemas.ids import now_ms
from schemas.records import MediaRef, Scene

log = logging.getLogger(__name__)

# A reservation outlives the longest publish; after that its process is presumed dead.
_LEASE_MARGIN_S = 10.0


@dataclass(frozen=True, slots=True)
class Accepted:
    story_id: str
    submitted_at: int
    replayed: bool


async def submit(
    state: GatewayState,
    principal: Principal,
    submission: Submission,
    *,
    idempotency_key: str | None,
    upload: Upload | None = None,
) -> Accepted:
    """Publish ``submission``; with a key, a repeat returns the first story instead of a second event."""
    reservation: Reservation | None = None
    if idempotency_key is not None:
        request_hash = fingerprint(submission.canonical() + (upload.sha256.encode() if upload else b""))
        reserved = await state.idempotency.reserve(principal.account_id, idempotency_key, request_hash)
        if isinstance(reserved, Earlier):
            log.info("idempotent replay story_id=%s account_id=%s", reserved.story_id, principal.account_id)
            return Accepted(reserved.story_id, reserved.submitted_at, replayed=True)
        reservation = reserved
        story_id = reservation.story_id
    else:
        story_id = new_story_id()
    uri = None
    try:
        media = None
        if upload is not None:
            key = f"uploads/{story_id}/input{upload.extension}"
            uri = await asyncio.to_thread(state.store.put_bytes, key, upload.data)
            media = MediaRef(uri=uri, media_type=upload.media_type, sha256=upload.sha256)
        submitted_at = now_ms()
        event = StorySubmitted(
            story_id=story_id,
            account_id=principal.account_id,
            tier=principal.tier,
            title=submission.title,
            task_type=submission.task_type,
            model=submission.model,
            params=submission.params,
            scenes=tuple(Scene(index=i, prompt=p) for i, p in enumerate(submission.prompts)),
            story_text=submission.story_text,
            input=media,
            callback_url=submission.webhook_url,
            webhook_events=submission.webhook_events,
            idempotency_key=idempotency_key,
            submitted_at=submitted_at,
            deadline=submitted_at + submission.start_within_s * 1000,
        )
        await _publish(state, state.catalog.stories_submitted, story_id, event)
    except BaseException:
        if idempotency_key is not None and reservation is not None:
            await state.idempotency.release(principal.account_id, idempotency_key, reservation)
        if uri is not None:
            await asyncio.to_thread(_remove, state, uri)
        raise
    if idempotency_key is not None and reservation is not None:
        try:
            await state.idempotency.confirm(principal.account_id, idempotency_key, reservation, submitted_at)
        except PyMongoError as exc:
            # The event is on Kafka, so this is still a 202; a retry after the lease re-publishes the
            # same story id (the reservation keeps it), which downstream deduplicates.
            log.warning("could not confirm idempotency key story_id=%s: %s", story_id, exc)
    log.info(
        "accepted story_id=%s account_id=%s tier=%s scenes=%d",
        story_id,
        principal.account_id,
        principal.tier.value,
        len(submission.prompts),
    )
    return Accepted(story_id, submitted_at, replayed=False)


async def cancel(state: GatewayState, principal: Principal, story_id: str, reason: str | None) -> None:
    """Publish StoryCancelled; the materializer stops what has not finished and keeps what has."""
    # Sequence 1: the gateway's second event for the story, after StorySubmitted's 0.
    event = StoryCancelled(story_id=story_id, account_id=principal.account_id, reason=reason, sequence=1)
    await _publish(state, state.catalog.task_events, story_id, event)
    log.info("cancelled story_id=%s account_id=%s", story_id, principal.account_id)


async def _publish(state: GatewayState, topic: str, key: str, event: StorySubmitted | StoryCancelled) -> None:
    started = time.perf_counter()
    try:
        await state.publisher.publish(topic, key, event)
    except PublishFailed as exc:
        log.warning("publish failed topic=%s key=%s: %s", topic, key, exc)
        raise ServiceUnavailable(
            "Kafka did not acknowledge the submission; nothing was recorded, retry later",
            retry_after=state.settings.unavailable_retry_after_s,
        ) from exc
    finally:
        state.metrics.publish_latency.labels(type(event).__name__).observe(time.perf_counter() - started)


def _remove(state: GatewayState, uri: str) -> None:
    try:
        state.store.local_path(uri).unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - cleanup after a failure must not replace that failure
        log.warning("could not remove upload uri=%s: %s", uri, exc)


def lease_seconds(publish_timeout_s: float) -> float:
    return publish_timeout_s + _LEASE_MARGIN_S
