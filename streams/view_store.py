"""The job view in MongoDB: load a story's documents, write changed ones with a revision check.

Writes are bulk and unordered: new documents are inserted, changed ones updated with a filter on the
``_rev`` they were read with (a hash of their content), so two materializers that touch one story at
once (a batch topic's partition and a task.events partition owned by different workers) never
overwrite each other's work: the loser sees a conflict, reloads and reapplies its events. Only
``$set`` and plain inserts are used, which FerretDB 1.24 on SQLite supports, and every read and update
selects documents by ``_id``, which a MongoDB-wire server answers from its index (FerretDB 1.24 only
with the fixes in :mod:`ops.stack.ferretdb_patches`).

The store writes the live generation of the view (:mod:`ops.runtime.view_pointer`): it re-reads the
pointer at most every second, before a load or a write, so after ``storee view rebuild`` swaps it the
next flush reads and writes the new generation; documents remembered from the old one then meet other
revisions (or none) and cost a conflict and a reload (a flush that changes nothing writes nothing),
never a lost event. A store built with a fixed ``generation`` (the rebuild's own) never follows the
pointer.

An adapter to a server, named ``*_store``: the only module of ``streams/`` that talks to MongoDB; the
loops that use it are :mod:`streams.view_loop` and :mod:`streams.sweep_loop`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from ops.runtime.view_pointer import POINTER_COLLECTION, POINTER_ID, PointerCache, collection_names
from streams.view_doc import StoryDoc, TaskDoc, ViewDoc

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000
# Published FerretDB 1.24 (SQLite) holds one pooled connection per update of a command until the command
# ends, so an update command with 100 or more updates never finishes (measured: 99 take 0.2 s, 100 hang
# for good, and the database stays locked). Our build is fixed; bulk writes are still sent in commands
# smaller than that, so the view also works on a FerretDB someone else runs.
WRITE_CHUNK = 64
# Ids per ``$in`` read (our FerretDB build answers ``_id`` ``$in`` lists of up to 1,000 from its index).
READ_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Loaded:
    """The stored documents of some stories: story docs by id, task docs by story id then task id."""

    stories: dict[str, StoryDoc]
    tasks: dict[str, dict[str, TaskDoc]]


def revision(doc: Mapping[str, Any]) -> str:
    """A hash of a document's content (without ``_rev``), so equal content means equal revision."""
    body = {k: v for k, v in doc.items() if k != "_rev"}
    return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


class JobViewStore:
    def __init__(self, database: Database, *, generation: int | None = None) -> None:
        self.database = database
        self._fixed = generation
        self._pointer = PointerCache()
        self._generation = -1
        self._stories: Collection
        self._tasks: Collection
        self._use(generation or 0)

    @property
    def generation(self) -> int:
        """The generation written now (the pointer's ``current`` unless the store was built fixed)."""
        self._follow()
        return self._generation

    @property
    def stories(self) -> Collection:
        self._follow()
        return self._stories

    @property
    def tasks(self) -> Collection:
        self._follow()
        return self._tasks

    def _follow(self) -> None:
        if self._fixed is not None or not self._pointer.stale():
            return
        found = self.database[POINTER_COLLECTION].find_one({"_id": POINTER_ID})
        generation = self._pointer.update(found).current
        if generation != self._generation:
            log.info("job view generation=%s (was %s)", generation, self._generation)
            self._use(generation)

    def _use(self, generation: int) -> None:
        stories, tasks = collection_names(generation)
        self._stories, self._tasks = self.database[stories], self.database[tasks]
        self._generation = generation

    def ensure_indexes(self) -> None:
        """The indexes behind the gateway's queries; creating existing ones is harmless."""
        self.stories.create_index([("account_id", ASCENDING), ("submitted_at", DESCENDING)])
        self.stories.create_index([("status", ASCENDING)])
        self.tasks.create_index([("story_id", ASCENDING)])
        self.tasks.create_index(
            [("pool", ASCENDING), ("tier", ASCENDING), ("status", ASCENDING), ("queued_at", ASCENDING)]
        )
        self.tasks.create_index([("status", ASCENDING), ("deadline", ASCENDING)])  # the deadline sweeper

    def overdue(self, now: int, limit: int) -> list[dict[str, Any]]:
        """Tasks not started (queued or batched) whose deadline is before ``now``, oldest first: only
        the fields a TaskExpired needs (``_id``, story_id, deadline, attempt, ``_seq``)."""
        query = {"status": {"$in": ["queued", "batched"]}, "deadline": {"$lt": now}}
        fields = {"story_id": 1, "deadline": 1, "attempt": 1, "_seq": 1}
        return list(self.tasks.find(query, fields).sort("deadline", ASCENDING).limit(limit))

    def load(self, story_ids: Sequence[str], task_ids: Iterable[str] = ()) -> Loaded:
        """The stored documents of ``story_ids`` and all their tasks.

        Only ``_id`` lookups, which every MongoDB-wire server answers from its index: a story document
        lists its tasks' ids (``_tasks``), and ``task_ids`` (those the flush is about) covers tasks
        written without their story document by a flush that crashed before it wrote the story, which
        is being replayed now. Story documents written before ``_tasks`` existed are looked up by
        ``story_id`` instead.
        """
        ids = list(story_ids)
        stories: dict[str, StoryDoc] = {}
        story_docs, task_docs = self.stories, self.tasks  # one generation for the whole load
        for chunk in _chunks(ids, READ_CHUNK):
            stories.update((doc["_id"], doc) for doc in story_docs.find({"_id": {"$in": chunk}}))
        wanted = set(task_ids)
        unlisted: list[str] = []
        for story in stories.values():
            listed = story.get("_tasks")
            if listed is None:
                unlisted.append(story["_id"])
            else:
                wanted.update(listed)
        tasks: dict[str, dict[str, TaskDoc]] = {story_id: {} for story_id in ids}
        for field, values in (("_id", sorted(wanted)), ("story_id", unlisted)):
            for chunk in _chunks(values, READ_CHUNK):
                for doc in task_docs.find({field: {"$in": chunk}}):
                    tasks.setdefault(doc["story_id"], {})[doc["_id"]] = doc
        return Loaded(stories, tasks)

    def write(
        self,
        stories: Iterable[tuple[StoryDoc | None, StoryDoc]],
        tasks: Iterable[tuple[TaskDoc | None, TaskDoc]],
    ) -> set[str]:
        """Write ``(old, new)`` pairs whose content changed; return the story ids that hit a conflict."""
        conflicts: set[str] = set()
        story_docs, task_docs = self.stories, self.tasks  # one generation for the whole write
        conflicts |= self._write(task_docs, list(tasks), lambda doc: doc["story_id"])
        conflicts |= self._write(story_docs, list(stories), lambda doc: doc["_id"])
        return conflicts

    def _write(
        self,
        collection: Collection,
        pairs: Sequence[tuple[ViewDoc | None, ViewDoc]],
        story_of: Callable[[Any], str],
    ) -> set[str]:
        ops: list[InsertOne[Any] | UpdateOne] = []
        written: dict[str, ViewDoc] = {}
        for old, new in pairs:
            new["_rev"] = revision(new)
            if old is not None and old.get("_rev") == new["_rev"]:
                continue  # unchanged: a replay or a duplicate costs no write
            if old is None:
                ops.append(InsertOne(new))
            else:
                body = {k: v for k, v in new.items() if k != "_id"}
                ops.append(UpdateOne({"_id": new["_id"], "_rev": old.get("_rev")}, {"$set": body}))
            written[new["_id"]] = new
        if not ops:
            return set()
        expected_updates = sum(isinstance(op, UpdateOne) for op in ops)
        matched = 0
        for start in range(0, len(ops), WRITE_CHUNK):
            try:
                matched += collection.bulk_write(
                    ops[start : start + WRITE_CHUNK], ordered=False
                ).matched_count
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                    raise
                matched += exc.details.get("nMatched", 0)
                expected_updates += len(errors)  # so the check below looks for every loser
        if matched >= expected_updates:
            return set()
        # Someone else wrote some of these documents: find which by their revision.
        stored = {
            doc["_id"]: doc.get("_rev")
            for doc in collection.find({"_id": {"$in": list(written)}}, {"_rev": 1})
        }
        lost = {story_of(doc) for doc_id, doc in written.items() if stored.get(doc_id) != doc["_rev"]}
        log.info("view write conflict collection=%s stories=%s", collection.name, sorted(lost))
        return lost


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
