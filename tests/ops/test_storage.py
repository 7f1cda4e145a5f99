from __future__ import annotations

import pytest

from ops.runtime.storage import LocalStore, StorageError


def test_put_and_read_back(tmp_path):
    store = LocalStore(tmp_path / "out")
    uri = store.put_bytes("outputs/s1/t1.mp4", b"video")
    assert uri.startswith("file://") and uri.endswith("outputs/s1/t1.mp4")
    assert store.open(uri).read() == b"video"
    assert store.put_bytes("outputs/s1/t1.mp4", b"redone") == uri  # a redone task replaces its clip
    assert store.local_path(uri).read_bytes() == b"redone"
    assert not [p for p in (tmp_path / "out" / "outputs" / "s1").iterdir() if p.name.startswith(".")]


def test_put_file_moves_into_place(tmp_path):
    source = tmp_path / "render.mp4"
    source.write_bytes(b"frames")
    store = LocalStore(tmp_path / "out")
    uri = store.put_file("outputs/s/t.mp4", source)
    assert not source.exists() and store.open(uri).read() == b"frames"


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../escape", "a/../../b"])
def test_keys_cannot_escape_the_root(tmp_path, key):
    with pytest.raises(StorageError, match="invalid object key"):
        LocalStore(tmp_path).put_bytes(key, b"x")


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "s3://bucket/key", "file://otherhost/x"])
def test_foreign_uris_are_refused(tmp_path, uri):
    with pytest.raises(StorageError):
        LocalStore(tmp_path).local_path(uri)
