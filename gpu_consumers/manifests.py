"""Stored outputs and their manifests: what lets a replayed batch skip tasks that already completed.

A task's media goes to ``outputs/<story_id>/<task_id>.<ext>`` and then, once the media is in place,
a small manifest to ``outputs/<story_id>/<task_id>.json`` (uri, media type, duration, size, sha256,
seed, media key), both written atomically through the store. A manifest therefore never names media
that is not there, and a crash between the two only costs a render. Before rendering, a task whose
manifest exists and whose media still matches its size and sha256 is not rendered again: its
TaskCompleted is re-emitted from the manifest, which also heals a crash between storing the output
and publishing the event. Anything else (no manifest, an unreadable one, media missing or changed)
means "render it".
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

from gpu_consumers.admission import safe_component
from gpu_consumers.pipelines.batch import RenderedMedia
from ops.storage import LocalStore, StorageError
from schemas.records import BatchTask, OutputArtifact

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


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
    """Task outputs and manifests in a :class:`LocalStore`."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def save(self, task: BatchTask, rendered: RenderedMedia, *, batch_id: str, consumer_id: str) -> Manifest:
        """Store a rendered output, then its manifest; return the manifest."""
        prefix = task_prefix(task)
        data = rendered.path.read_bytes()
        media_key = f"{prefix}.{rendered.extension}"
        uri = self.store.put_bytes(media_key, data)
        manifest = Manifest(
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
        # After the media: a manifest on disk always names media that is in place.
        self.store.put_bytes(f"{prefix}.json", manifest.to_json())
        return manifest

    def find(self, task: BatchTask) -> Manifest | None:
        """The manifest of ``task``'s stored output if that output is intact, else ``None``."""
        prefix = task_prefix(task)
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
