"""A stream worker (``python -m streams``) in a subprocess of its own, for benches and integration tests.

Each worker gets its own environment (servers, topic prefix, data directory, knobs) and log file; it
dies with the process that started it, even one killed before its cleanup ran (Linux only).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ops.runtime.config import Env

ROOT = Path(__file__).resolve().parents[2]
# Worker logs are kept per run; STOREE_TEST_WORKER_LOGLEVEL=info shows Faust's rebalances and recovery.
LOGLEVEL = Env().str("STOREE_TEST_WORKER_LOGLEVEL", "warning")

try:  # loaded here, not in the child: a child forked from a threaded process should do next to nothing
    _LIBC: Any = ctypes.CDLL("libc.so.6")
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """A worker must not outlive a run that was killed before its ``finally`` ran (Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Worker:
    """A ``python -m streams`` subprocess with its own environment and log file."""

    def __init__(self, env: dict[str, str], log_path: Path, module: str = "streams") -> None:
        self.env = env
        self.log_path = log_path
        self.module = module  # run as ``python -m <module>``: streams, or a test's variant of it
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "--skip-topics", "--loglevel", LOGLEVEL],
                env=self.env, cwd=self.log_path.parent, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the crash the restart tests simulate."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def worker_env(
    bootstrap: str, mongo_url: str, database: str, prefix: str, datadir: Path, **extra: Any
) -> dict[str, str]:
    """The environment of a worker on these servers and topic prefix; ``extra`` adds settings."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MONGODB_URL": mongo_url,
        "MONGODB_DATABASE": database,
        "TOPIC_PREFIX": prefix,
        "STREAMS_DATADIR": str(datadir),
        "BATCH_TIMEOUT": "0.5",
        "STREAMS_SESSION_TIMEOUT": "6",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env
