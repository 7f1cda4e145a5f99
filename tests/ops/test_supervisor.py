"""The supervisor with real child processes: restart after a crash, clean stop, one log per child."""

from __future__ import annotations

import sys
import time

from ops.runtime.supervisor import ChildSpec, Supervisor
from ops.stack.process import _state

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; print('boom', flush=True); sys.exit(3)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)",
]


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_crashed_child_is_reported_and_restarted_with_backoff(tmp_path):
    events = []
    supervisor = Supervisor(
        [ChildSpec("crasher", CRASHER), ChildSpec("sleeper", SLEEPER)],
        tmp_path,
        backoff=(0.05, 0.2),
        on_event=events.append,
    )
    supervisor.start()
    try:
        assert _wait(lambda: (supervisor.poll(), supervisor.restarts("crasher") >= 3)[1])
        sleeper_pid = supervisor.pid("sleeper")
        assert sleeper_pid is not None
    finally:
        supervisor.stop()
    exits = [e for e in events if e.name == "crasher" and e.kind == "exited"]
    assert exits and "exit status 3" in exits[0].detail
    assert [e.kind for e in events if e.name == "sleeper"] == ["started", "stopped"]
    assert supervisor.log_file("crasher").read_text().count("boom") >= 3
    assert _state(sleeper_pid) in (None, "Z")


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path):
    supervisor = Supervisor([ChildSpec("stubborn", STUBBORN)], tmp_path, grace=0.5)
    supervisor.start()
    assert _wait(lambda: "ready" in supervisor.log_file("stubborn").read_text())
    pid = supervisor.pid("stubborn")
    supervisor.stop()
    assert supervisor.pid("stubborn") is None
    assert _state(pid) in (None, "Z")


def test_a_killed_child_is_restarted(tmp_path):
    import os
    import signal

    supervisor = Supervisor([ChildSpec("sleeper", SLEEPER)], tmp_path, backoff=(0.05, 0.1))
    supervisor.start()
    try:
        first = supervisor.pid("sleeper")
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: (supervisor.poll(), supervisor.pid("sleeper") not in (None, first))[1])
    finally:
        supervisor.stop()
