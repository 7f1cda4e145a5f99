"""The materializer's memory of the documents it last wrote, so a busy story is not read back (pure).

In memory only; :mod:`streams.view_loop` consults it before :mod:`streams.view_store`.

An entry is a story's documents exactly as this materializer left them in MongoDB (with their ``_rev``).
It may be stale only if another materializer wrote the story since; every write is checked against the
revision it was based on, so a stale entry costs a conflict, never a lost update: the story is evicted,
read back and its events applied again. Entries are dropped least recently used first, and a story is
evicted whenever its write did not certainly land.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from streams.view_doc import StoryDoc, TaskDoc


@dataclass(frozen=True, slots=True)
class CachedStory:
    story: StoryDoc
    tasks: dict[str, TaskDoc]


class ViewCache:
    def __init__(self, max_stories: int) -> None:
        self.max_stories = max_stories
        self._entries: OrderedDict[str, CachedStory] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, story_ids: Iterable[str]) -> tuple[dict[str, CachedStory], list[str]]:
        """The cached entries among ``story_ids``, and the ids that must be read from the store."""
        found: dict[str, CachedStory] = {}
        missing: list[str] = []
        for story_id in story_ids:
            entry = self._entries.get(story_id)
            if entry is None:
                missing.append(story_id)
            else:
                self._entries.move_to_end(story_id)
                found[story_id] = entry
        return found, missing

    def put(self, story_id: str, story: StoryDoc, tasks: dict[str, TaskDoc]) -> None:
        """Remember a story's documents as just written (the dicts are kept, not copied)."""
        if self.max_stories <= 0:
            return
        self._entries[story_id] = CachedStory(story, tasks)
        self._entries.move_to_end(story_id)
        while len(self._entries) > self.max_stories:
            self._entries.popitem(last=False)

    def evict(self, story_ids: Iterable[str]) -> None:
        for story_id in story_ids:
            self._entries.pop(story_id, None)

    def clear(self) -> None:
        self._entries.clear()
