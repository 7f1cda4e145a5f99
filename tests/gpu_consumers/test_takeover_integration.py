"""Fast takeover, against the real broker, with the 45 s default session timeout.

A member killed under the supervisor is restarted and, being static (``group.instance.id``), gets
its partitions back as soon as it has joined: no rebalance, no wait for the session timeout. A
member stopped gracefully leaves the group, so the others take its partitions at once. Wall time is
only an assertion bound here, far below the session timeout; the figure is printed for the record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from schemas.records import Tier
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import POOL, REPO, ConsumerProcesses
from tests.gpu_consumers.members import assignment, when

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSION_TIMEOUT_MS = 45_000
TAKEOVER_BOUND_S = 15.0
SIMULATED = json.dumps({POOL: {"pipeline": "simulated", "simulated_seconds": 0.05}})


def groups(prefix: str) -> list[str]:
    return [f"{prefix}gpu-consumers.{POOL}.{tier.value}" for tier in Tier]


def pid_in(ready: Path) -> int:
    # The ready file holds the consumer id, host/pid/device.
    return int(ready.read_text().strip().split("/")[1])


def stable_assignments(admin: AdminClient, prefix: str, members: int) -> dict[str, dict[str, set[int]]]:
    found = {group: assignment(admin, group) for group in groups(prefix)}
    return found if all(len(by) == members for by in found.values()) else {}


def test_a_killed_member_under_the_supervisor_gets_its_partitions_back_in_seconds(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str, admin: AdminClient, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PREFIX": topic_prefix,
        "GPU_POOLS": SIMULATED,
        "OUTPUT_DIR": str(tmp_path / "outputs"),
        "STOREE_HOME": str(tmp_path / "home"),
        "READY_FILE": str(tmp_path / "ready"),
        "KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
    }
    log = open(tmp_path / "supervisor.log", "wb")  # noqa: SIM115 - closed in finally
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "gpu_consumers", "gpu-consumer", "--pool", POOL, "--devices", "cpu,cpu"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ready = tmp_path / "ready.0"
    try:
        for index in (0, 1):
            when((tmp_path / f"ready.{index}").is_file, 60, f"child {index} to be ready")
        before = {}

        def settled() -> bool:
            before.update(stable_assignments(admin, topic_prefix, 2))
            return bool(before)

        when(settled, 60, "two static members in each tier group")
        assert all(name.startswith(f"{POOL}.") for by in before.values() for name in by)  # static ids
        victim = pid_in(ready)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        when(
            lambda: ready.is_file() and pid_in(ready) != victim,
            TAKEOVER_BOUND_S,
            "the restarted child's assignment",
        )
        assigned_after = time.monotonic() - killed_at
        # The restarted child holds what its predecessor held, and nothing moved meanwhile.
        when(
            lambda: stable_assignments(admin, topic_prefix, 2) == before, 10, "the same assignment as before"
        )
        took = time.monotonic() - killed_at
        print(
            f"\ntakeover after kill -9 under the supervisor: assigned {assigned_after:.1f}s, "
            f"stable {took:.1f}s"
        )
        assert assigned_after < TAKEOVER_BOUND_S
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=60)
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
            log.close()


def test_a_member_stopped_gracefully_leaves_and_its_partitions_move_at_once(
    consumers: ConsumerProcesses, catalog: TopicCatalog, admin: AdminClient, topic_prefix: str
) -> None:
    overrides = {"GPU_POOLS": SIMULATED, "KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    leaving, staying = consumers.start(**overrides), consumers.start(**overrides)
    consumers.wait_ready(leaving)
    consumers.wait_ready(staying)
    when(lambda: stable_assignments(admin, topic_prefix, 2), 60, "two members in each tier group")
    leaving.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    assert leaving.wait(timeout=30) == 0, consumers.log(leaving)

    def all_moved() -> bool:
        found = stable_assignments(admin, topic_prefix, 1)
        return bool(found) and all(set().union(*by.values()) == {0, 1, 2, 3} for by in found.values())

    when(all_moved, TAKEOVER_BOUND_S, "the staying member to own every partition")
    print(f"\npartitions moved {time.monotonic() - stopped_at:.1f}s after SIGTERM")
