"""Supervised child processes: start them, restart the ones that exit, stop them all.

Two users: ``storee up`` (:mod:`ops.system`: the gateway, the streams worker and the GPU consumers,
each logging to its own file in its own session, so a Ctrl-C reaches only the supervisor, which stops
them in order) and ``storee gpu-consumer --devices a,b`` (:mod:`gpu_consumers.supervisor`: one group
member per device, sharing the supervisor's terminal and output).

A child that exits on its own is reported and restarted after a backoff: quick for the first exit,
doubling up to a limit for a child that keeps dying soon after it starts (so a crash loop cannot
spin), quick again once a child has stayed up ``stable_after`` seconds. :meth:`Supervisor.stop`
signals every running child (reverse start order), waits up to the grace period (then SIGKILL) or,
without one, as long as they take, and returns the worst exit status any child had.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    """How long to wait before restarting a child that exited (pure arithmetic)."""

    first_s: float = 1.0
    max_s: float = 30.0
    # A child that ran this long before exiting counts as healthy: its next crash restarts fast again.
    stable_s: float = 60.0

    def delay(self, crashes_in_a_row: int) -> float:
        if crashes_in_a_row < 1:
            raise ValueError(f"crashes_in_a_row must be >= 1, got {crashes_in_a_row}")
        # The exponent is capped so a crash loop of days never overflows a float; the cap on the
        # delay is reached long before.
        return min(self.max_s, self.first_s * 2 ** min(crashes_in_a_row - 1, 64))

    def streak(self, previous: int, lived_s: float) -> int:
        """The crash streak after a child that lived ``lived_s`` exited."""
        return 1 if lived_s >= self.stable_s else previous + 1


@dataclass(frozen=True)
class ChildSpec:
    """What to run: a name (for logs and reports), the command and its environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None


class ChildEventKind(enum.StrEnum):
    STARTED = "started"
    EXITED = "exited"  # on its own: it is restarted after the backoff
    RESTARTED = "restarted"
    STOPPED = "stopped"  # by stop()


@dataclass(frozen=True)
class ChildEvent:
    """Something that happened to a child."""

    name: str
    kind: ChildEventKind
    detail: str


@dataclass
class _Child:
    spec: ChildSpec
    log_file: Path | None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    streak: int = 0  # exits in a row, each soon after its start
    restarts: int = 0  # restarts in the current streak
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)  # every exit status, in order


class Supervisor:
    """Starts children, restarts the ones that exit, and stops them all on request.

    ``log_dir``: each child appends its output to ``<log_dir>/<name>.log`` (stdin closed); ``None``:
    children share the supervisor's stdin, stdout and stderr. ``own_session``: each child leads its
    own session and is signalled as a process group; else it stays in the supervisor's and only its
    pid is signalled. ``grace``: how long :meth:`stop` waits before SIGKILL (``None``: no limit).
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        log_dir: Path | None,
        *,
        backoff: tuple[float, float] = (1.0, 30.0),
        stable_after: float = 60.0,
        grace: float | None = 20.0,
        own_session: bool = True,
        on_event: Callable[[ChildEvent], None] | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names}")
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        self._children = [
            _Child(spec, log_dir / f"{spec.name}.log" if log_dir is not None else None) for spec in specs
        ]
        self._backoff = RestartBackoff(first_s=backoff[0], max_s=backoff[1], stable_s=stable_after)
        self._grace = grace
        self._own_session = own_session
        self._on_event = on_event or (lambda event: None)
        self._stopping = False

    def log_file(self, name: str) -> Path | None:
        return self._child(name).log_file

    def pid(self, name: str) -> int | None:
        process = self._child(name).process
        return process.pid if process is not None and process.poll() is None else None

    def restarts(self, name: str) -> int:
        return self._child(name).restarts

    def worst_exit_status(self) -> int:
        """The largest exit status (a signal's number for a child it killed) any child had."""
        return max((abs(code) for child in self._children for code in child.history), default=0)

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
                lived = now - child.started_at
                if self._stopping:
                    self._emit(child, ChildEventKind.EXITED, f"exit status {_describe(code)} while stopping")
                    continue
                child.streak = self._backoff.streak(child.streak, lived)
                delay = self._backoff.delay(child.streak)
                child.restart_at = now + delay
                self._emit(
                    child,
                    ChildEventKind.EXITED,
                    f"exit status {_describe(code)} after {lived:.1f}s; restarting in {delay:.1f}s",
                )
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts = child.streak
                self._spawn(child)
                self._emit(child, ChildEventKind.RESTARTED, f"restart #{child.restarts}")

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Poll until ``stop`` is set (waiting on it, so a signal handler that sets it ends the wait)."""
        while not stop.is_set():
            self.poll()
            stop.wait(interval)

    def signal_all(self, signum: int) -> None:
        """Send ``signum`` to every running child; restart none from now on (safe in a signal handler)."""
        self._stopping = True
        for child in self._children:
            if child.process is not None and child.process.poll() is None:
                self._signal(child.process, signum)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Stop every child with ``signum`` (reverse start order); return the worst exit status."""
        self._stopping = True
        held = [(child, child.process) for child in reversed(self._children) if child.process is not None]
        for child in self._children:
            child.restart_at = None  # a child waiting out its backoff stays down
        for _, process in held:
            if process.poll() is None:
                self._signal(process, signum)
        deadline = None if self._grace is None else time.monotonic() + self._grace
        for child, process in held:
            try:
                process.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                name = signal.Signals(signum).name
                log.warning("child=%s ignored %s for %.0fs; killing it", child.spec.name, name, self._grace)
                self._signal(process, signal.SIGKILL)
                process.wait()
            child.history.append(process.returncode)
            child.process = None
            self._emit(child, ChildEventKind.STOPPED, f"exit status {_describe(process.returncode)}")
        return self.worst_exit_status()

    def kill(self) -> None:
        """SIGKILL and reap every child still running (the last resort when supervising itself failed)."""
        self._stopping = True
        for child in self._children:
            if child.process is not None and child.process.poll() is None:
                self._signal(child.process, signal.SIGKILL)
                child.process.wait()

    def _spawn(self, child: _Child) -> None:
        with contextlib.ExitStack() as files:
            output: IO[bytes] | None = None
            if child.log_file is not None:
                output = files.enter_context(open(child.log_file, "ab"))
                output.write(
                    f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {child.spec.name}\n".encode()
                )
                output.flush()
            child.process = subprocess.Popen(
                list(child.spec.argv),
                stdin=subprocess.DEVNULL if output is not None else None,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                env=dict(child.spec.env) if child.spec.env is not None else None,
                start_new_session=self._own_session,
            )
        child.started_at = time.monotonic()
        child.restart_at = None
        where = f", log {child.log_file}" if child.log_file is not None else ""
        self._emit(child, ChildEventKind.STARTED, f"pid {child.process.pid}{where}")

    def _signal(self, process: subprocess.Popen[bytes], signum: int) -> None:
        if not self._own_session:
            process.send_signal(signum)
            return
        # The whole group, so a child's own children stop with it.
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    def _child(self, name: str) -> _Child:
        for child in self._children:
            if child.spec.name == name:
                return child
        raise KeyError(name)

    def _emit(self, child: _Child, kind: ChildEventKind, detail: str) -> None:
        level = logging.WARNING if kind is ChildEventKind.EXITED else logging.DEBUG
        log.log(level, "child=%s %s: %s", child.spec.name, kind, detail)
        self._on_event(ChildEvent(child.spec.name, kind, detail))


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)
