"""``storee gpu-consumer --devices cpu,cpu`` with the simulated backend: supervision, DLQ, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from gpu_consumers.pipelines.simulated import SIMULATED_MEDIA_TYPE
from ops.runtime.kafka import DurableProducer
from schemas.dlq import DeadLetter
from schemas.events import TaskCompleted
from schemas.records import Tier
from schemas.topics import TopicCatalog
from tests.gpu_consumers.helpers import POOL, REPO, EventReader, group_members, make_batch, publish
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_one_member_per_device_simulated_results_and_dead_letters(
    catalog: TopicCatalog, kafka_bootstrap: str, topic_prefix: str, admin: AdminClient, tmp_path: Path
) -> None:
    pools = {POOL: {"pipeline": "simulated", "simulated_seconds": 0.1}}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PREFIX": topic_prefix,
        "GPU_POOLS": json.dumps(pools),
        "OUTPUT_DIR": str(tmp_path / "outputs"),
        "READY_FILE": str(tmp_path / "ready"),
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    log = open(tmp_path / "supervisor.log", "wb")  # noqa: SIM115 - closed in finally
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "gpu_consumers", "gpu-consumer", "--pool", POOL, "--devices", "cpu,cpu"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    reader = EventReader(kafka_bootstrap, catalog.task_events, 3)
    dlq = EventReader(kafka_bootstrap, catalog.dlq, 3, decode=False)
    try:
        for index in (0, 1):
            wait_for(lambda i=index: (tmp_path / f"ready.{i}").is_file(), 60, f"child {index} to be ready")
        for tier in Tier:
            group = f"{topic_prefix}gpu-consumers.{POOL}.{tier.value}"
            wait_for(lambda g=group: len(group_members(admin, g)) == 2, 60, f"two members in {group}")

        # A record that is not an event goes to the DLQ with its origin; the member carries on.
        producer = DurableProducer(kafka_bootstrap)
        garbage = producer.produce_sync(catalog.batches(POOL, Tier.FREE), b"not avro", key=b"k")
        producer.close()
        batch = make_batch(["a red fox"], tier=Tier.FREE)
        publish(kafka_bootstrap, catalog, batch)

        reader.wait(lambda r: bool(r.of(TaskCompleted)), 60, "the simulated batch to complete")
        (completion,) = reader.of(TaskCompleted)
        assert completion.consumer_id.endswith("+simulated")
        assert completion.outputs[0].media_type == SIMULATED_MEDIA_TYPE

        dlq.wait(lambda r: bool(r.raw), 30, "the dead letter")
        (message,) = dlq.raw
        assert message.value() == b"not avro"
        letter = DeadLetter.from_headers(message.headers())
        assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == (
            garbage.topic(),
            garbage.partition(),
            garbage.offset(),
        )
        assert letter.error_class == "schemas.exceptions.CodecError"
    finally:
        reader.close()
        dlq.close()
        supervisor.send_signal(signal.SIGTERM)
        try:
            code = supervisor.wait(timeout=60)
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
            log.close()
    assert code == 0, (tmp_path / "supervisor.log").read_text()[-3000:]
    assert not (tmp_path / "ready.0").exists() and not (tmp_path / "ready.1").exists()
