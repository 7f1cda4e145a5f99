"""The clips behind a result: a task's output file, or a story's finished clips as a ZIP made in chunks.

The ZIP is written by :mod:`zipfile` into a sink that the response drains after every chunk, so a story
of many long clips never sits in memory; clips are stored, not deflated (video and audio are already
compressed). The generator is synchronous: Starlette runs it in its thread pool, off the event loop.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.runtime.storage import LocalStore, StorageError

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
_ZIP64_LIMIT = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class Clip:
    """One file to serve, with the name it gets in an archive."""

    path: Path
    name: str
    media_type: str


def task_clip(store: LocalStore, task: dict[str, Any], index: int) -> Clip | None:
    """Output ``index`` of a task, or ``None`` when it has none or its file is gone."""
    outputs = task.get("outputs") or []
    if not 0 <= index < len(outputs):
        return None
    output = outputs[index]
    try:
        path = store.local_path(output["uri"])
    except (StorageError, KeyError) as exc:
        log.warning("missing output task_id=%s index=%d: %s", task["_id"], index, exc)
        return None
    name = f"scene_{int(task.get('scene_index') or 0):03d}_{index}{path.suffix}"
    return Clip(path, name, output.get("media_type") or "application/octet-stream")


def story_clips(store: LocalStore, story: dict[str, Any]) -> list[Clip]:
    """Every finished clip of a story whose file is still there, in scene order."""
    clips: list[Clip] = []
    seen: set[str] = set()
    for output in sorted(story.get("outputs") or [], key=lambda o: o.get("scene_index") or 0):
        try:
            path = store.local_path(output["uri"])
        except (StorageError, KeyError) as exc:
            log.warning("missing output story_id=%s task_id=%s: %s", story["_id"], output.get("task_id"), exc)
            continue
        name = f"scene_{int(output.get('scene_index') or 0):03d}{path.suffix}"
        while name in seen:  # several outputs of one scene
            name = f"{Path(name).stem}_{len(seen)}{path.suffix}"
        seen.add(name)
        clips.append(Clip(path, name, output.get("media_type") or "application/octet-stream"))
    return clips


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream that hands over what was written so far."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return data


def zip_stream(clips: list[Clip]) -> Iterator[bytes]:
    """The bytes of a ZIP of ``clips``, produced a chunk at a time."""
    sink = _Sink()
    # An unseekable sink makes zipfile write data descriptors instead of seeking back to headers.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for clip in clips:
            large = clip.path.stat().st_size > _ZIP64_LIMIT
            with archive.open(clip.name, "w", force_zip64=large) as entry, open(clip.path, "rb") as source:
                while chunk := source.read(CHUNK):
                    entry.write(chunk)
                    if sink.size >= CHUNK:
                        yield sink.take()
            yield sink.take()
    yield sink.take()
