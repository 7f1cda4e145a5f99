from __future__ import annotations

import signal
import sys
import time

import pytest

from gpu_consumers.supervisor import member_specs
from ops.runtime.supervisor import ChildEvent, ChildEventKind, ChildSpec, RestartBackoff, Supervisor
from tests.waiting import wait_for


def test_a_crash_is_restarted_quickly_and_a_crash_loop_ever_later() -> None:
    backoff = RestartBackoff(first_s=0.5, max_s=30.0, stable_s=60.0)
    streak, delays = 0, []
    for _ in range(8):
        streak = backoff.streak(streak, lived_s=3.0)  # dies soon after every start
        delays.append(backoff.delay(streak))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # A child that ran a while before crashing is healthy again: the next restart is quick.
    assert backoff.delay(backoff.streak(streak, lived_s=600.0)) == 0.5
    with pytest.raises(ValueError):
        backoff.delay(0)


def test_each_device_gets_a_member_with_its_own_ready_file_and_metrics_port() -> None:
    specs = member_specs("p", ["cpu", "cpu"], {"READY_FILE": "/run/ready", "METRICS_PORT": "9100"})
    assert [spec.name for spec in specs] == ["p.0@cpu", "p.1@cpu"]
    assert [spec.argv[-4:] for spec in specs] == [["--pool", "p", "--devices", "cpu"]] * 2
    assert [(spec.env or {})["READY_FILE"] for spec in specs] == ["/run/ready.0", "/run/ready.1"]
    assert [(spec.env or {})["METRICS_PORT"] for spec in specs] == ["9100", "9101"]
    assert (member_specs("p", ["cpu"], {"METRICS_PORT": "0"})[0].env or {})["METRICS_PORT"] == "0"


def test_shared_session_members_get_the_signal_and_the_worst_status_is_returned() -> None:
    crasher = [sys.executable, "-c", "import sys; sys.exit(3)"]
    member = [
        sys.executable,
        "-c",
        "import signal, sys, time; signal.signal(signal.SIGINT, lambda *_: sys.exit(0)); "
        "print('up', flush=True); time.sleep(60)",
    ]
    events: list[ChildEvent] = []
    supervisor = Supervisor(
        [ChildSpec("crasher", crasher), ChildSpec("member", member)],
        None,
        backoff=(0.05, 0.1),
        grace=None,
        own_session=False,
        on_event=events.append,
    )
    supervisor.start()
    try:
        wait_for(lambda: (supervisor.poll(), supervisor.restarts("crasher") >= 1)[1], 10, "a restart")
        assert supervisor.log_file("member") is None
        started = time.monotonic()
        assert supervisor.stop(signal.SIGINT) == 3  # the member stopped cleanly; the crasher's 3 counts
        assert time.monotonic() - started < 10
    finally:
        supervisor.kill()
    assert [e.kind for e in events if e.name == "member"] == [ChildEventKind.STARTED, ChildEventKind.STOPPED]
    assert supervisor.pid("member") is None
