"""Background server processes with pid files, logs, port checks and readiness waits.

A server started here runs in its own session (so it outlives ``storee stack up`` and can be stopped as
a group); its pid file records the pid and a marker that must appear in its command line, so ``down``
never signals an unrelated process that happens to reuse the pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.stack.exceptions import StackError

log = logging.getLogger(__name__)


def require_tool(name: str, purpose: str) -> str:
    """Return the path of an executable on PATH, or raise a one-line error that says what needs it."""
    path = shutil.which(name)
    if path is None:
        raise StackError(f"'{name}' was not found on PATH; it is needed to {purpose}")
    return path


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]) -> None:
    """Poll ``check`` until it is true; fail early if the process died, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        if check():
            return
        if not alive():
            raise StackError(f"{what} exited before it became ready")
        if time.monotonic() >= deadline:
            raise StackError(f"{what} did not become ready within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` so two ``up``/``down`` runs never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _state(pid: int) -> str | None:
    """The process state letter from /proc (``Z`` for a zombie), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


@dataclass(frozen=True)
class ManagedProcess:
    """One server process owned by the local stack: ``<dir>/<name>.pid`` and ``<dir>/<name>.log``."""

    name: str
    directory: Path
    marker: str  # a string only our process has in its command line (a path inside the run dir)

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        state = _state(pid)
        if state is None or state == "Z" or self.marker not in _cmdline(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def alive(self) -> bool:
        return self.pid() is not None

    def start(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log_handle:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        log.debug("started name=%s pid=%d log=%s", self.name, proc.pid, self.log_file)
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the process group gracefully, then forcibly; return whether something was running."""
        pid = self.pid()
        if pid is None:
            return False
        signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)
        if _running(pid):
            log.warning("name=%s pid=%d ignored SIGTERM for %.0fs; killing it", self.name, pid, timeout)
            signal_group(pid, signal.SIGKILL)
            while _running(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 15) -> str:
        try:
            content = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(content[-lines:])


def _running(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    state = _state(pid)
    return state is not None and state != "Z"


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
