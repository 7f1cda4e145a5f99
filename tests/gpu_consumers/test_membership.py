"""Static membership ids: stable per host and device, one slot per live process, freed by any death."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from gpu_consumers.membership import claim_instance, instance_base, sanitize
from tests.gpu_consumers.helpers import REPO
from tests.waiting import wait_for


def test_ids_use_only_characters_kafka_accepts() -> None:
    assert instance_base("gpu-7.example", "cuda:0") == "gpu-7.example.cuda_0"
    assert instance_base("gpu-7", "cuda:1", configured="render/pod 3") == "render_pod_3.cuda_1"
    assert sanitize("") == "_" and len(sanitize("h" * 500)) == 180


def test_live_claims_never_share_a_slot_and_a_released_slot_is_reused(tmp_path: Path) -> None:
    first = claim_instance(tmp_path, "t.tiny", "host.cpu")
    second = claim_instance(tmp_path, "t.tiny", "host.cpu")
    other_scope = claim_instance(tmp_path, "t.other", "host.cpu")
    assert (first.slot, second.slot, other_scope.slot) == (0, 1, 0)
    assert first.group_instance_id("tiny", "premium") == "tiny.premium.host.cpu.0"
    first.release()
    assert not first.held
    again = claim_instance(tmp_path, "t.tiny", "host.cpu")
    assert again.slot == 0
    for claim in (second, other_scope, again):
        claim.release()


def test_a_killed_process_frees_its_slot_for_its_successor(tmp_path: Path) -> None:
    ready = tmp_path / "claimed"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from gpu_consumers.membership import claim_instance\n"
            f"claim = claim_instance(pathlib.Path({str(tmp_path)!r}), 't.tiny', 'host.cpu')\n"
            f"pathlib.Path({str(ready)!r}).write_text(str(claim.slot))\n"
            "time.sleep(600)\n",
        ],
        cwd=REPO,
    )
    try:
        wait_for(ready.is_file, 30, "the child to claim a slot")
        assert ready.read_text() == "0"
        assert claim_instance(tmp_path, "t.tiny", "host.cpu").slot == 1  # held by the live child
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        successor = claim_instance(tmp_path, "t.tiny", "host.cpu")
        assert successor.slot == 0  # the successor joins with the dead member's instance id
    finally:
        if holder.poll() is None:
            holder.kill()
