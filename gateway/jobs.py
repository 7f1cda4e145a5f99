"""Reading the job view (``schemas/view.py``): stories and tasks of one account, never another's.

Beside it, a story's webhook deliveries (``webhook_deliveries``, written by the delivery service in
``streams/``, one collection outside the view's generations), again only the account's own.

Every query filters on ``account_id``, so another account's story reads exactly like a missing one.
The gateway never writes these collections; the materializer in ``streams/`` does. It reads the live
generation of the view (:mod:`ops.runtime.view_pointer`), re-reading the pointer at most every second,
so ``storee view rebuild`` and ``storee view rollback`` switch its reads without a restart (the
generations hold the same stories when they swap).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from gateway.exceptions import InvalidRequest, NotFound
from ops.runtime.view_pointer import POINTER_COLLECTION, POINTER_ID, PointerCache, collection_names
from schemas.view import WEBHOOK_DELIVERIES, StoryStatus, TaskStatus

WAITING = [TaskStatus.QUEUED.value, TaskStatus.BATCHED.value]
MAX_TASKS_SHOWN = 1000
# Stories per page of a listing: the default, and the most a ``limit`` may ask for.
DEFAULT_PAGE = 20
MAX_PAGE = 100
# A story's webhook status is drawn from its newest deliveries, this many at most (progress is throttled to
# two a second, so that is over an hour of progress webhooks).
MAX_DELIVERIES_READ = 10_000
_DELIVERY_FIELDS = {"status": 1, "attempts": 1, "last_error": 1, "updated_at": 1, "last_attempt_at": 1}


@dataclass(frozen=True, slots=True)
class Page:
    stories: list[dict[str, Any]]
    next_cursor: str | None


class JobView:
    """Queries on ``stories`` and ``tasks`` for one caller at a time."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self._pointer = PointerCache()
        self._generation = 0
        self._stories, self._tasks = self._collections(0)

    def _collections(self, generation: int) -> tuple[Any, Any]:
        stories, tasks = collection_names(generation)
        return self._database[stories], self._database[tasks]

    async def follow(self) -> int:
        """The live generation, re-reading the pointer when the one held is over a second old."""
        if self._pointer.stale():
            found = await self._database[POINTER_COLLECTION].find_one({"_id": POINTER_ID})
            generation = self._pointer.update(found).current
            if generation != self._generation:
                self._stories, self._tasks = self._collections(generation)
                self._generation = generation
        return self._generation

    async def story(self, account_id: str, story_id: str) -> dict[str, Any]:
        await self.follow()
        doc = await self._stories.find_one({"_id": story_id, "account_id": account_id})
        if doc is None:
            raise NotFound(f"no story {story_id!r} (a story just submitted appears within seconds)")
        return dict(doc)

    async def task(self, account_id: str, task_id: str) -> dict[str, Any]:
        await self.follow()
        doc = await self._tasks.find_one({"_id": task_id, "account_id": account_id})
        if doc is None:
            raise NotFound(f"no task {task_id!r}")
        return dict(doc)

    async def tasks_of(self, account_id: str, story_id: str) -> list[dict[str, Any]]:
        cursor = self._tasks.find({"story_id": story_id, "account_id": account_id}).sort("scene_index", 1)
        return [dict(doc) async for doc in cursor.limit(MAX_TASKS_SHOWN)]

    async def webhook_deliveries(self, account_id: str, story_id: str) -> list[dict[str, Any]]:
        """The story's webhook deliveries, newest first: their status, attempts and last error only."""
        found = (
            self._database[WEBHOOK_DELIVERIES]
            .find({"story_id": story_id, "account_id": account_id}, _DELIVERY_FIELDS)
            .sort("updated_at", -1)
            .limit(MAX_DELIVERIES_READ)
        )
        return [dict(doc) async for doc in found]

    async def queue_position(self, task: dict[str, Any]) -> int | None:
        """Tasks ahead of ``task`` in its pool and tier, or ``None`` once it left the queue."""
        if task.get("status") not in WAITING or task.get("queued_at") is None:
            return None
        return int(
            await self._tasks.count_documents(
                {
                    "pool": task.get("pool"),
                    "tier": task.get("tier"),
                    "status": {"$in": WAITING},
                    "queued_at": {"$lt": task["queued_at"]},
                }
            )
        )

    async def page(
        self, account_id: str, *, status: StoryStatus | None, limit: int, cursor: str | None
    ) -> Page:
        """The account's stories, newest first; ``cursor`` continues where the previous page ended."""
        await self.follow()
        query: dict[str, Any] = {"account_id": account_id}
        if status is not None:
            query["status"] = status.value
        if cursor is not None:
            submitted_at, story_id = decode_cursor(cursor)
            query["$or"] = [
                {"submitted_at": {"$lt": submitted_at}},
                {"submitted_at": submitted_at, "_id": {"$lt": story_id}},
            ]
        found = self._stories.find(query).sort([("submitted_at", -1), ("_id", -1)]).limit(limit + 1)
        docs = [dict(doc) async for doc in found]
        more = len(docs) > limit
        docs = docs[:limit]
        last = docs[-1] if more else None
        return Page(docs, encode_cursor(int(last["submitted_at"]), last["_id"]) if last else None)


def encode_cursor(submitted_at: int, story_id: str) -> str:
    raw = f"{submitted_at}:{story_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        submitted_at, story_id = raw.split(":", 1)
        return int(submitted_at), story_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("cursor is not one this API returned", field="cursor") from None
