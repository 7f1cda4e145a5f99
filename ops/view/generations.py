"""The job view's generations in MongoDB: the pointer, its conditional swap, snapshots, pruning.

The pointer is changed by one single-document write whose filter holds the value the tool read (or, the
first time, an insert of the document, which a second insert cannot repeat), so two operators racing
each other cannot both win: the loser gets :class:`~ops.view.exceptions.PointerMoved` and nothing
changes. Readers follow the pointer within :data:`~ops.runtime.view_pointer.REFRESH_S`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ops.runtime.view_pointer import POINTER_COLLECTION, POINTER_ID, ViewPointer, collection_names
from ops.view.digest import StoryDocs
from ops.view.exceptions import PointerMoved
from schemas.view import STORIES

_GENERATED = re.compile(rf"^{STORIES}_g(\d+)$")


class ViewGenerations:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._pointers = database[POINTER_COLLECTION]

    def pointer(self) -> ViewPointer:
        return ViewPointer.from_doc(self._pointers.find_one({"_id": POINTER_ID}))

    def existing(self) -> list[int]:
        """Generations that have a stories collection (0 always counts: it is where views start)."""
        found = {
            int(m.group(1)) for name in self.database.list_collection_names() if (m := _GENERATED.match(name))
        }
        return sorted(found | {0})

    def next_generation(self) -> int:
        pointer = self.pointer()
        return max([*self.existing(), pointer.current, pointer.previous or 0]) + 1

    def since(self) -> dict[tuple[str, int], int] | None:
        """The live group's committed offsets when the pointer last swapped forward, if recorded."""
        doc = self._pointers.find_one({"_id": POINTER_ID}) or {}
        stored = doc.get("since")
        if not stored:
            return None
        return {(row["topic"], int(row["partition"])): int(row["offset"]) for row in stored}

    def move(
        self, expected: ViewPointer, new: ViewPointer, *, since: Mapping[tuple[str, int], int] | None
    ) -> None:
        """Set the pointer to ``new`` (with ``since``) if it is still ``expected``; else PointerMoved."""
        rows = [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted((since or {}).items())]
        body = {**new.to_doc(), "since": rows}
        if self._pointers.find_one({"_id": POINTER_ID}) is None and expected == ViewPointer():
            try:
                self._pointers.insert_one({"_id": POINTER_ID, **body})
                return
            except DuplicateKeyError:
                raise PointerMoved("someone else moved the view pointer first; nothing changed") from None
        result = self._pointers.update_one({"_id": POINTER_ID, **expected.to_doc()}, {"$set": body})
        if result.matched_count != 1:
            raise PointerMoved(
                f"the view pointer is no longer {expected}; nothing changed (now {self.pointer()})"
            )

    def drop(self, generation: int) -> None:
        if generation == 0:
            raise ValueError("generation 0 (stories, tasks) is never dropped")
        for name in collection_names(generation):
            self.database.drop_collection(name)

    def prune(self, keep: int) -> list[int]:
        """Drop generations other than the live one, the previous one and the ``keep`` newest others."""
        pointer = self.pointer()
        protected = {0, pointer.current, *([pointer.previous] if pointer.previous is not None else [])}
        others = [g for g in self.existing() if g not in protected]
        doomed = others[: max(len(others) - max(keep - 1, 0), 0)]
        for generation in doomed:
            self.drop(generation)
        return doomed

    def snapshot(self, generation: int, story_ids: list[str] | None = None) -> dict[str, StoryDocs]:
        """Every story of a generation (or only ``story_ids``) with its tasks."""
        stories_name, tasks_name = collection_names(generation)
        query: dict[str, Any] = {} if story_ids is None else {"_id": {"$in": story_ids}}
        task_query: dict[str, Any] = {} if story_ids is None else {"story_id": {"$in": story_ids}}
        stories = {doc["_id"]: doc for doc in self.database[stories_name].find(query)}
        tasks: dict[str, dict[str, Any]] = {}
        for doc in self.database[tasks_name].find(task_query):
            tasks.setdefault(doc["story_id"], {})[doc["_id"]] = doc
        return {
            story_id: StoryDocs(stories.get(story_id), tasks.get(story_id, {}))
            for story_id in set(stories) | set(tasks)
        }
