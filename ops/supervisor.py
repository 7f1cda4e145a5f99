"""Run Storee's services as supervised child processes.

Each child logs to its own file, a child that exits on its own is reported and restarted with
exponential backoff (reset once it has stayed up for a while), and ``stop`` shuts every child down in
reverse start order: SIGTERM to its process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ops.stack.process import signal_group

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildSpec:
    """What to run: a name (for logs and reports), the command and its environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None


@dataclass
class _Child:
    spec: ChildSpec
    log_file: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ChildEvent:
    """Something that happened to a child: ``started``, ``exited`` or ``restarted``."""

    name: str
    kind: str
    detail: str


class Supervisor:
    """Starts children, restarts the ones that exit, and stops them all on request."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        log_dir: Path,
        *,
        backoff: tuple[float, float] = (1.0, 30.0),
        stable_after: float = 60.0,
        grace: float = 20.0,
        on_event: Callable[[ChildEvent], None] | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names}")
        log_dir.mkdir(parents=True, exist_ok=True)
        self._children = [_Child(spec, log_dir / f"{spec.name}.log") for spec in specs]
        self._backoff = backoff
        self._stable_after = stable_after
        self._grace = grace
        self._on_event = on_event or (lambda event: None)
        self._stopping = False

    def log_file(self, name: str) -> Path:
        return self._child(name).log_file

    def pid(self, name: str) -> int | None:
        process = self._child(name).process
        return process.pid if process is not None and process.poll() is None else None

    def restarts(self, name: str) -> int:
        return self._child(name).restarts

    def start(self) -> None:
        for child in self._children:
            self._spawn(child)

    def poll(self) -> None:
        """Notice exited children and restart those whose backoff has passed; call this often."""
        now = time.monotonic()
        for child in self._children:
            process = child.process
            if process is not None and process.poll() is not None:
                code = process.returncode
                child.history.append(code)
                child.process = None
                delay = self._delay(child, now)
                child.restart_at = now + delay
                self._emit(child, "exited", f"exit status {_describe(code)}; restarting in {delay:.1f}s")
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
                self._emit(child, "restarted", f"restart #{child.restarts}")

    def run(self, should_stop: Callable[[], bool], interval: float = 0.2) -> None:
        while not should_stop():
            self.poll()
            time.sleep(interval)

    def stop(self) -> None:
        """Stop every child (reverse start order), waiting up to the grace period before SIGKILL."""
        self._stopping = True
        running = [
            (child, child.process)
            for child in reversed(self._children)
            if child.process is not None and child.process.poll() is None
        ]
        for _, process in running:
            signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        for child, process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child=%s ignored SIGTERM for %.0fs; killing it", child.spec.name, self._grace)
                signal_group(process.pid, signal.SIGKILL)
                process.wait()
            self._emit(child, "stopped", f"exit status {_describe(process.returncode)}")
            child.process = None

    def _spawn(self, child: _Child) -> None:
        with open(child.log_file, "ab") as handle:
            handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {child.spec.name}\n".encode())
            handle.flush()
            child.process = subprocess.Popen(
                list(child.spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=dict(child.spec.env) if child.spec.env is not None else None,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
            )
        child.started_at = time.monotonic()
        child.restart_at = None
        self._emit(child, "started", f"pid {child.process.pid}, log {child.log_file}")

    def _delay(self, child: _Child, now: float) -> float:
        if now - child.started_at >= self._stable_after:
            child.restarts = 0  # it ran long enough: the next crash starts the backoff afresh
        first, limit = self._backoff
        return min(limit, first * (2 ** min(child.restarts, 16)))

    def _child(self, name: str) -> _Child:
        for child in self._children:
            if child.spec.name == name:
                return child
        raise KeyError(name)

    def _emit(self, child: _Child, kind: str, detail: str) -> None:
        level = logging.WARNING if kind == "exited" else logging.DEBUG
        log.log(level, "child=%s %s: %s", child.spec.name, kind, detail)
        self._on_event(ChildEvent(child.spec.name, kind, detail))


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)
