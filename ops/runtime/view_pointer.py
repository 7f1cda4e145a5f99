"""Which generation of the job view is live: a pointer document both the gateway and the materializer follow.

The job view can be rebuilt beside the live one (``storee view rebuild``) and readers switched to the
rebuilt copy without a restart. Each copy is a *generation*: generation 0 is the original ``stories`` and
``tasks`` collections (so a deployment that never rebuilt reads what it always read), generation ``g``
is ``stories_g<g>`` and ``tasks_g<g>`` in the same database. One document, ``view_pointer`` /
``job_view``, names the live generation and the one before it (kept for ``storee view rollback``); no
document means generation 0.

Readers do not watch the document (FerretDB has no change streams): they re-read it when the value they
hold is older than :data:`REFRESH_S`, so a swap reaches every reader within about that long. The pointer
is changed only by one conditional single-document update (filter on the ``current`` the tool read), so
two operators racing each other cannot both win.

The values here are pure; each service reads the document through its own MongoDB client (the gateway's
is asynchronous, the materializer's is not) and hands it to a :class:`PointerCache`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.view import STORIES, TASKS

POINTER_COLLECTION = "view_pointer"
POINTER_ID = "job_view"
REFRESH_S = 1.0


@dataclass(frozen=True, slots=True)
class ViewPointer:
    """The live generation, the one it replaced (``None`` before any swap) and when it was swapped (ms)."""

    current: int = 0
    previous: int | None = None
    swapped_at: int | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> ViewPointer:
        """The pointer a stored document holds; no document is generation 0."""
        if doc is None:
            return cls()
        previous = doc.get("previous")
        swapped_at = doc.get("swapped_at")
        return cls(
            current=int(doc.get("current", 0)),
            previous=None if previous is None else int(previous),
            swapped_at=None if swapped_at is None else int(swapped_at),
        )

    def to_doc(self) -> dict[str, Any]:
        return {"current": self.current, "previous": self.previous, "swapped_at": self.swapped_at}


def collection_names(generation: int) -> tuple[str, str]:
    """The ``(stories, tasks)`` collection names of a generation."""
    if generation < 0:
        raise ValueError(f"generation must be 0 or more, not {generation}")
    if generation == 0:
        return STORIES, TASKS
    return f"{STORIES}_g{generation}", f"{TASKS}_g{generation}"


def swapped(pointer: ViewPointer, to: int, now_ms: int) -> ViewPointer:
    """The pointer after readers move to generation ``to``; the live one becomes ``previous``."""
    if to == pointer.current:
        raise ValueError(f"generation {to} is already live")
    collection_names(to)  # checks it
    return ViewPointer(current=to, previous=pointer.current, swapped_at=now_ms)


def rolled_back(pointer: ViewPointer, now_ms: int) -> ViewPointer:
    """The pointer after readers move back to ``previous`` (which becomes the new ``previous``)."""
    if pointer.previous is None:
        raise ValueError("there is no previous generation to roll back to")
    return ViewPointer(current=pointer.previous, previous=pointer.current, swapped_at=now_ms)


class PointerCache:
    """The pointer a reader last read, and whether it is time to read it again."""

    def __init__(self, refresh_s: float = REFRESH_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self._clock = clock
        self._read_at: float | None = None
        self.pointer = ViewPointer()

    def stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self.refresh_s

    def update(self, doc: Mapping[str, Any] | None) -> ViewPointer:
        self.pointer = ViewPointer.from_doc(doc)
        self._read_at = self._clock()
        return self.pointer
