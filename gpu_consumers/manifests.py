"""Stored outputs and their manifests: what lets a replayed batch skip tasks that already completed.

A task's media goes to ``outputs/<story_id>/<task_id>.<ext>`` and then, once the media is in place,
a small manifest to ``outputs/<story_id>/<task_id>.json`` (uri, media type, duration, size, sha256,
seed, media key), both written atomically through the store. A manifest therefore never names media
that is not there, and a crash between the two only costs a render. Before rendering, a task whose
manifest exists and whose media still matches its size and sha256 is not rendered again: its
TaskCompleted is re-emitted from the manifest, which also heals a crash between storing the output
and publishing the event. Anything else (no manifest, an unreadable one, media missing or changed)
means "render it".

Every store write is fsynced, so the GPU would sit idle for each one. A chunk's media are written
on a few I/O threads at once, and its manifests afterwards on a writer thread, while the next chunk
renders: a manifest is only ever a saving, never needed for a commit, and the lookups before a
batch wait for the writes still in flight, so a replay right behind its batch still finds them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TypeVar

from gpu_consumers.admission import safe_component
from gpu_consumers.pipelines.batch import RenderedMedia
from ops.runtime.storage import LocalStore, StorageError
from schemas.records import BatchTask, OutputArtifact

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
IO_THREADS = 8
T = TypeVar("T")
R = TypeVar("R")


def _attempt(call: Callable[[T], R], item: T) -> R | Exception:
    try:
        return call(item)
    except Exception as exc:  # noqa: BLE001 - handed back to the caller, which decides
        return exc


@dataclass(frozen=True, slots=True)
class Manifest:
    """What was stored for one task, enough to announce its completion again."""

    media_key: str
    uri: str
    media_type: str
    duration_s: float | None
    size_bytes: int
    sha256: str
    seed: int | None
    batch_id: str
    consumer_id: str
    version: int = MANIFEST_VERSION

    def artifact(self) -> OutputArtifact:
        return OutputArtifact(
            uri=self.uri,
            media_type=self.media_type,
            duration_s=self.duration_s,
            size_bytes=self.size_bytes,
            sha256=self.sha256,
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest; raise ``ValueError`` for anything that is not one of ours."""
        try:
            raw = json.loads(data)
            manifest = cls(**raw)
        except (TypeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a manifest: {exc}") from exc
        if manifest.version != MANIFEST_VERSION:
            raise ValueError(f"manifest version {manifest.version}, expected {MANIFEST_VERSION}")
        return manifest


def task_prefix(task: BatchTask) -> str:
    """``outputs/<story_id>/<task_id>``; raises :class:`InvalidTask` for ids that are not safe."""
    return f"outputs/{safe_component('story_id', task.story_id)}/{safe_component('task_id', task.task_id)}"


class OutputStore:
    """Task outputs and manifests in a :class:`LocalStore` (used from the pipeline thread)."""

    def __init__(self, store: LocalStore, io_threads: int = IO_THREADS) -> None:
        self.store = store
        self._io_threads = io_threads
        self._pool: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[tuple[str, Future[str]]] = []

    def save_all(
        self, items: Sequence[tuple[BatchTask, RenderedMedia]], *, batch_id: str, consumer_id: str
    ) -> list[Manifest | Exception]:
        """Store several outputs: per item its manifest or its error (manifests are written after)."""
        stored = self._each(lambda item: self._put_media(*item, batch_id, consumer_id), items)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="manifests")
        for (task, _), manifest in zip(items, stored, strict=True):
            if not isinstance(manifest, Exception):
                future = self._writer.submit(self._put_manifest, task, manifest)
                self._writes.append((task.task_id, future))
        return stored

    def find_all(self, tasks: Sequence[BatchTask]) -> list[Manifest | None]:
        """:meth:`find` for each task, in order, once the manifest writes in flight are done."""
        self.flush()
        found = self._each(self.find, tasks)
        for result in found:
            if isinstance(result, Exception):
                raise result
        return [result for result in found if not isinstance(result, Exception)]

    def flush(self) -> None:
        """Wait for the manifest writes in flight; one that failed only costs a render later."""
        writes, self._writes = self._writes, []
        for task_id, future in writes:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - a manifest is a saving, not a result
                log.warning("manifest not written, a replay renders again task_id=%s error=%s", task_id, exc)

    def close(self) -> None:
        self.flush()
        for pool in (self._pool, self._writer):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._writer = None

    def _each(self, call: Callable[[T], R], items: Sequence[T]) -> list[R | Exception]:
        if len(items) <= 1 or self._io_threads <= 1:
            return [_attempt(call, item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._io_threads, thread_name_prefix="outputs")
        return list(self._pool.map(lambda item: _attempt(call, item), items))

    def save(self, task: BatchTask, rendered: RenderedMedia, *, batch_id: str, consumer_id: str) -> Manifest:
        """Store a rendered output, then its manifest; return the manifest."""
        manifest = self._put_media(task, rendered, batch_id, consumer_id)
        self._put_manifest(task, manifest)
        return manifest

    def _put_media(
        self, task: BatchTask, rendered: RenderedMedia, batch_id: str, consumer_id: str
    ) -> Manifest:
        data = rendered.path.read_bytes()
        media_key = f"{task_prefix(task)}.{rendered.extension}"
        uri = self.store.put_bytes(media_key, data)
        return Manifest(
            media_key=media_key,
            uri=uri,
            media_type=rendered.media_type,
            duration_s=rendered.duration_s,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            seed=rendered.seed,
            batch_id=batch_id,
            consumer_id=consumer_id,
        )

    def _put_manifest(self, task: BatchTask, manifest: Manifest) -> str:
        # Only after the media is in place: a manifest on disk always names media that is there.
        return self.store.put_bytes(f"{task_prefix(task)}.json", manifest.to_json())

    def find(self, task: BatchTask) -> Manifest | None:
        """The manifest of ``task``'s stored output if that output is intact, else ``None``."""
        prefix = task_prefix(task)
        # Most tasks were never rendered: a plain stat says so (the prefix is made of safe components).
        if not (self.store.root / f"{prefix}.json").is_file():
            return None
        try:
            manifest = Manifest.from_json(
                self.store.local_path(self.store.uri(f"{prefix}.json")).read_bytes()
            )
        except StorageError:
            return None  # never completed here
        except (OSError, ValueError) as exc:
            log.warning("unreadable manifest, rendering again task_id=%s error=%s", task.task_id, exc)
            return None
        if not manifest.media_key.startswith(prefix + "."):
            log.warning(
                "manifest names another key, rendering again task_id=%s key=%s",
                task.task_id,
                manifest.media_key,
            )
            return None
        try:
            media = self.store.local_path(self.store.uri(manifest.media_key))
            data = media.read_bytes()
        except (StorageError, OSError) as exc:
            log.warning("stored output missing, rendering again task_id=%s error=%s", task.task_id, exc)
            return None
        if len(data) != manifest.size_bytes or hashlib.sha256(data).hexdigest() != manifest.sha256:
            log.warning(
                "stored output changed, rendering again task_id=%s key=%s", task.task_id, manifest.media_key
            )
            return None
        # The store may have moved since (another OUTPUT_DIR): announce where the media is now.
        current = self.store.uri(manifest.media_key)
        if current != manifest.uri:
            manifest = Manifest(**{**asdict(manifest), "uri": current})
        return manifest
