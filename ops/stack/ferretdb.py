"""FerretDB 1.x, the local MongoDB-wire server: built with the Go toolchain, SQLite storage, no telemetry."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from ops.stack.exceptions import StackError
from ops.stack.ferretdb_patches import apply_patches, patch_tag
from ops.stack.process import ManagedProcess, port_in_use, require_tool, wait_until

log = logging.getLogger(__name__)

MODULE = "github.com/FerretDB/FerretDB"


def build_ferretdb(cache_dir: Path, version: str) -> Path:
    """Return the path of a FerretDB binary for ``version``, building it from the Go module once.

    The module proxy serves the module source but not ``go install``'s version listing, and the
    published module lacks the generated ``build/version/version.txt``; so the source is copied to a
    writable directory, the version file written, our fixes applied (:mod:`ops.stack.ferretdb_patches`)
    and the command built there.
    """
    binary = cache_dir / f"ferretdb-{version}{patch_tag(version)}" / "ferretdb"
    if binary.exists():
        return binary
    go = require_tool("go", "build FerretDB, the local MongoDB-wire server (install the Go toolchain)")
    log.info("building FerretDB %s with Go into %s (once; later starts reuse it)", version, binary)
    download = _run([go, "mod", "download", "-json", f"{MODULE}@{version}"], "download the FerretDB module")
    try:
        module_dir = Path(json.loads(download)["Dir"])
    except (ValueError, KeyError) as exc:
        raise StackError(f"unexpected answer from 'go mod download' for FerretDB {version}") from exc
    source = binary.parent / "src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(module_dir, source)
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    (source / "build" / "version" / "version.txt").write_text(version + "\n")
    if patched := apply_patches(source, version):
        log.info("applied %d fixes to the FerretDB %s source", patched, version)
    partial = binary.with_name("ferretdb.partial")
    _run([go, "build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"], "build FerretDB", cwd=source)
    partial.rename(binary)
    shutil.rmtree(source, ignore_errors=True)
    return binary


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GOFLAGS": os.environ.get("GOFLAGS", "") + " -mod=mod", "CGO_ENABLED": "0"}
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise StackError(f"could not {what}: {' | '.join(detail) or 'no output'}")
    return result.stdout


class FerretDB:
    """One FerretDB process on loopback with its SQLite files under ``run_dir``."""

    def __init__(
        self, cache_dir: Path, run_dir: Path, version: str, *, port: int = 27017, host: str = "127.0.0.1"
    ) -> None:
        self.cache_dir = cache_dir
        self.run_dir = run_dir
        self.version = version
        self.port = port
        self.host = host
        self.process = ManagedProcess("ferretdb", run_dir, marker=str(run_dir / "data"))

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def is_ready(self) -> bool:
        return ping(self.url, timeout=1.0)

    def start(self, timeout: float) -> bool:
        if self.process.alive() and self.is_ready():
            return False
        binary = build_ferretdb(self.cache_dir, self.version)
        if not self.process.alive():
            if port_in_use(self.port, self.host):
                raise StackError(
                    f"port {self.port} is already in use by another process; set STOREE_MONGO_PORT to a free "
                    "port, or point MONGODB_URL at that server"
                )
            (self.run_dir / "data").mkdir(parents=True, exist_ok=True)
            (self.run_dir / "state").mkdir(parents=True, exist_ok=True)
            self.process.start(
                [
                    str(binary),
                    f"--listen-addr={self.host}:{self.port}",
                    "--handler=sqlite",
                    f"--sqlite-url=file:{self.run_dir / 'data'}/",
                    f"--state-dir={self.run_dir / 'state'}",
                    "--telemetry=disable",
                    "--debug-addr=-",
                    "--log-level=warn",
                ]
            )
        try:
            wait_until(self.is_ready, timeout, f"FerretDB at {self.url}", alive=self.process.alive)
        except StackError as exc:
            raise StackError(f"{exc} (see {self.process.log_file})") from None
        return True

    def stop(self) -> int:
        return int(self.process.stop())


def ping(url: str, timeout: float) -> bool:
    """Whether a MongoDB-wire server at ``url`` answers ``ping``."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    ms = int(timeout * 1000)
    client: MongoClient = MongoClient(
        url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()
