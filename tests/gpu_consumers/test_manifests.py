"""Stored outputs and manifests: what is found intact is reused, anything else is rendered again."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from gpu_consumers.exceptions import InvalidTask
from gpu_consumers.manifests import Manifest, OutputStore
from gpu_consumers.pipelines.batch import RenderedMedia
from ops.runtime.storage import LocalStore
from schemas.records import BatchTask
from tests.gpu_consumers.helpers import make_batch


def saved(tmp_path: Path, data: bytes = b"a clip") -> tuple[OutputStore, BatchTask, Manifest]:
    outputs = OutputStore(LocalStore(tmp_path / "store"))
    task = make_batch(["a fox"]).tasks[0]
    clip = tmp_path / "0000.mp4"
    clip.write_bytes(data)
    rendered = RenderedMedia(task.task_id, clip, "video/mp4", "mp4", 0.625, 1000)
    return outputs, task, outputs.save(task, rendered, batch_id="b-1", consumer_id="host/1/cpu")


def test_the_manifest_sits_next_to_the_media_and_names_it(tmp_path: Path) -> None:
    outputs, task, manifest = saved(tmp_path)
    base = tmp_path / "store" / "outputs" / task.story_id / task.task_id
    assert Path(f"{base}.mp4").read_bytes() == b"a clip"
    stored = json.loads(Path(f"{base}.json").read_text())
    assert stored["sha256"] == hashlib.sha256(b"a clip").hexdigest() and stored["size_bytes"] == 6
    assert stored["seed"] == 1000 and stored["media_key"] == f"outputs/{task.story_id}/{task.task_id}.mp4"
    assert manifest.artifact().uri == Path(f"{base}.mp4").resolve().as_uri()
    assert outputs.find(task) == manifest


def test_nothing_stored_means_render(tmp_path: Path) -> None:
    assert OutputStore(LocalStore(tmp_path)).find(make_batch(["x"]).tasks[0]) is None


@pytest.mark.parametrize("damage", ["truncate", "replace", "remove", "garble_manifest", "foreign_key"])
def test_a_damaged_output_means_render(tmp_path: Path, damage: str) -> None:
    outputs, task, manifest = saved(tmp_path)
    media = outputs.store.local_path(manifest.uri)
    manifest_path = media.with_suffix(".json")
    if damage == "truncate":
        media.write_bytes(b"a cl")
    elif damage == "replace":
        media.write_bytes(b"b clip")
    elif damage == "remove":
        media.unlink()
    elif damage == "garble_manifest":
        manifest_path.write_text("{not json")
    else:
        other = dataclasses.replace(manifest, media_key="outputs/other/other:0.mp4")
        manifest_path.write_bytes(other.to_json())
    assert outputs.find(task) is None


def test_unsafe_ids_never_become_keys(tmp_path: Path) -> None:
    task = dataclasses.replace(make_batch(["x"]).tasks[0], task_id="../../escape")
    with pytest.raises(InvalidTask):
        OutputStore(LocalStore(tmp_path)).find(task)


def test_a_moved_store_announces_where_the_media_is_now(tmp_path: Path) -> None:
    outputs, task, manifest = saved(tmp_path)
    moved = tmp_path / "moved"
    (tmp_path / "store").rename(moved)
    found = OutputStore(LocalStore(moved)).find(task)
    assert found is not None and found.uri.startswith(moved.resolve().as_uri())
