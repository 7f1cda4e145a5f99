"""The output store: where uploaded inputs and generated clips live, addressed by URI.

The default is a local directory (``OUTPUT_DIR``, ``file://`` URIs), shared by the gateway (uploads in,
results out) and the GPU consumers (clips written). Keys are relative paths such as
``outputs/<story_id>/<task_id>.mp4``; writes go to a temporary name and are renamed into place, so a
reader never sees half a file and a redone task simply replaces its clip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ops.runtime.exceptions import StoreeError


class StorageError(StoreeError):
    """A key or URI does not name an object in this store, or the object could not be written."""


class LocalStore:
    """Objects as files under one root directory."""

    scheme = "file"

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if not key or relative.is_absolute() or ".." in relative.parts:
            raise StorageError(f"invalid object key {key!r}")
        return self.root.joinpath(*relative.parts)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_bytes(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` atomically; return its URI."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target.as_uri()

    def put_file(self, key: str, source: Path) -> str:
        """Move (or copy across devices) a finished local file under ``key``; return its URI."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.partial")
        shutil.copyfile(source, staging)
        os.replace(staging, target)
        source.unlink(missing_ok=True)
        return target.as_uri()

    def local_path(self, uri: str) -> Path:
        """The file behind a URI of this store; raise if the URI points elsewhere or nothing is there."""
        parsed = urlparse(uri)
        if parsed.scheme != self.scheme or parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{uri!r} is not in the local output store")
        path = Path(unquote(parsed.path)).resolve()
        if self.root not in path.parents:
            raise StorageError(f"{uri!r} is outside the output store")
        if not path.is_file():
            raise StorageError(f"{uri!r} does not exist")
        return path

    def open(self, uri: str) -> BinaryIO:
        return open(self.local_path(uri), "rb")
