"""One child process per device, each a full group member; SIGTERM and SIGINT are passed on to all.

A child that exits on its own (a crash or a fatal error) is restarted, since the device would
otherwise sit idle. The first restart comes quickly (half a second): members are static
(:mod:`gpu_consumers.membership`), so the new child takes its predecessor's instance id and gets the
same partitions back as soon as it has loaded its model, instead of the group waiting out the session
timeout. A child that keeps dying soon after it starts is restarted ever later (doubling up to 30 s),
so a crash loop cannot spin. The supervisor returns when every child has exited after a stop, with
the worst exit status.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    """How long to wait before restarting a child that exited (pure arithmetic)."""

    first_s: float = 0.5
    max_s: float = 30.0
    # A child that ran this long before exiting counts as healthy: its next crash restarts fast again.
    stable_s: float = 60.0

    def delay(self, crashes_in_a_row: int) -> float:
        if crashes_in_a_row < 1:
            raise ValueError(f"crashes_in_a_row must be >= 1, got {crashes_in_a_row}")
        return min(self.max_s, self.first_s * 2 ** (crashes_in_a_row - 1))

    def streak(self, previous: int, lived_s: float) -> int:
        """The crash streak after a child that lived ``lived_s`` exited."""
        return 1 if lived_s >= self.stable_s else previous + 1


RESTART = RestartBackoff()


def child_command(pool: str, device: str) -> list[str]:
    return [sys.executable, "-m", "gpu_consumers", "gpu-consumer", "--pool", pool, "--devices", device]


def child_env(base: Mapping[str, str], index: int) -> dict[str, str]:
    """The environment of child ``index``: its own ready file and metrics port."""
    env = dict(base)
    if env.get("READY_FILE"):
        env["READY_FILE"] = f"{env['READY_FILE']}.{index}"
    port = env.get("METRICS_PORT", "").strip()
    if port and port != "0":
        env["METRICS_PORT"] = str(int(port) + index)
    return env


def supervise(pool: str, devices: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """Run one member per device until SIGTERM/SIGINT; return the worst child exit status."""
    base = dict(os.environ if environ is None else environ)
    stopping = threading.Event()
    children: dict[int, subprocess.Popen[bytes]] = {}
    restart_at: dict[int, float] = {}
    started_at: dict[int, float] = {}
    streaks: dict[int, int] = {}

    def start(index: int) -> None:
        children[index] = subprocess.Popen(child_command(pool, devices[index]), env=child_env(base, index))
        started_at[index] = time.monotonic()
        log.info("child started pool=%s device=%s pid=%d", pool, devices[index], children[index].pid)

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    try:
        for index in range(len(devices)):
            start(index)
        while True:
            for index, child in list(children.items()):
                code = child.poll()
                if code is None or index in restart_at:
                    continue
                worst = max(worst, abs(code))
                if not stopping.is_set():
                    lived = time.monotonic() - started_at[index]
                    streaks[index] = RESTART.streak(streaks.get(index, 0), lived)
                    delay = RESTART.delay(streaks[index])
                    log.warning(
                        "child exited pool=%s device=%s code=%d lived_s=%.1f, restarting in_s=%.1f",
                        pool,
                        devices[index],
                        code,
                        lived,
                        delay,
                    )
                    restart_at[index] = time.monotonic() + delay
            for index, when in list(restart_at.items()):
                if stopping.is_set():
                    restart_at.pop(index)
                    children.pop(index)
                elif time.monotonic() >= when:
                    restart_at.pop(index)
                    start(index)
            if stopping.is_set() and all(child.poll() is not None for child in children.values()):
                for child in children.values():
                    worst = max(worst, abs(child.returncode))
                return worst
            # Waiting on several children at once has no portable call; a short poll is cheap here.
            stopping.wait(0.2)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
