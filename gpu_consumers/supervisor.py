"""One child process per device, each a full group member; SIGTERM and SIGINT are passed on to all.

A child that exits on its own (a fatal error) is restarted after a pause, since its partitions
already moved to the other members and the device would otherwise sit idle. The supervisor returns
when every child has exited after a stop, with the worst exit status.
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
from types import FrameType

log = logging.getLogger(__name__)

RESTART_DELAY_S = 5.0


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

    def start(index: int) -> None:
        children[index] = subprocess.Popen(child_command(pool, devices[index]), env=child_env(base, index))
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
                    log.warning(
                        "child exited pool=%s device=%s code=%d, restarting", pool, devices[index], code
                    )
                    restart_at[index] = time.monotonic() + RESTART_DELAY_S
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
