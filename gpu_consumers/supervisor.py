"""One child process per device, each a full group member; SIGTERM and SIGINT are passed on to all.

The policy only; the mechanism (restarts with backoff, signals, the stop) is
:class:`ops.runtime.supervisor.Supervisor`. A child that exits on its own (a crash or a fatal error)
is restarted, since the device would otherwise sit idle. The first restart comes quickly (half a
second): members are static (:mod:`gpu_consumers.membership`), so the new child takes its
predecessor's instance id and gets the same partitions back as soon as it has loaded its model,
instead of the group waiting out the session timeout. A child that keeps dying soon after it starts
is restarted ever later (doubling up to 30 s), so a crash loop cannot spin. The children share this
process's output and session; on a signal each gets the same signal and as long as its own
``SHUTDOWN_GRACE_S`` takes to stop. The supervisor returns when every child has exited, with the
worst exit status any child had.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from ops.runtime.supervisor import ChildEvent, ChildEventKind, ChildSpec, Supervisor

log = logging.getLogger(__name__)

FIRST_RESTART_S = 0.5
MAX_RESTART_S = 30.0
STABLE_AFTER_S = 60.0


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


def member_specs(pool: str, devices: Sequence[str], base: Mapping[str, str]) -> list[ChildSpec]:
    """One child per device, named by pool, slot and device (a device may appear twice: cpu,cpu)."""
    return [
        ChildSpec(f"{pool}.{index}@{device}", child_command(pool, device), child_env(base, index))
        for index, device in enumerate(devices)
    ]


def supervise(pool: str, devices: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """Run one member per device until SIGTERM/SIGINT; return the worst child exit status."""
    base = dict(os.environ if environ is None else environ)
    supervisor = Supervisor(
        member_specs(pool, devices, base),
        None,
        backoff=(FIRST_RESTART_S, MAX_RESTART_S),
        stable_after=STABLE_AFTER_S,
        grace=None,
        own_session=False,
        on_event=_log_event,
    )
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if received:  # already stopping: a second SIGTERM or Ctrl-C reaches the members too
            supervisor.signal_all(signum)
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        supervisor.start()
        supervisor.run(stop)
        return supervisor.stop(received[0])
    finally:
        supervisor.kill()


def _log_event(event: ChildEvent) -> None:
    # The mechanism logs exits as warnings; the rest of a member's life is worth an info line here.
    if event.kind is not ChildEventKind.EXITED:
        log.info("child=%s %s: %s", event.name, event.kind, event.detail)
