"""Smoke test: a Faust worker (faust-streaming on aiokafka) round-trips records through the real broker.

This is the check behind the faust-streaming/aiokafka pin in pyproject.toml: the worker joins its group,
gets its partitions, consumes and produces against the broker version the local stack runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.runtime.kafka import DurableProducer, make_consumer, raise_for_error

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_faust_agent_round_trip(kafka_bootstrap, make_topic, topic_prefix, tmp_path):
    source = make_topic(f"{topic_prefix}in", partitions=2)
    sink = make_topic(f"{topic_prefix}out", partitions=2)
    env = {
        **os.environ,
        "SMOKE_APP_ID": f"{topic_prefix}app",
        "SMOKE_BOOTSTRAP": kafka_bootstrap,
        "SMOKE_IN": source,
        "SMOKE_OUT": sink,
        "PYTHONPATH": str(ROOT),
    }
    log_path = tmp_path / "faust.log"
    with open(log_path, "wb") as log_file:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "tests.ops.faust_roundtrip_app",
                "--datadir",
                str(tmp_path / "data"),
                "worker",
                "-l",
                "warn",
                "--without-web",
            ],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        producer = DurableProducer(kafka_bootstrap)
        for i in range(50):
            producer.produce(source, f"word-{i}".encode(), key=f"k{i}".encode())
        assert producer.flush(30) == 0

        consumer = make_consumer(kafka_bootstrap, f"{topic_prefix}reader")
        consumer.subscribe([sink])
        received: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 90
        try:
            while len(received) < 50 and time.monotonic() < deadline:
                assert worker.poll() is None, f"faust worker exited: {log_path.read_text()[-2000:]}"
                message = consumer.poll(0.5)
                if message is None:
                    continue
                raise_for_error(message)
                received[message.key()] = message.value()
        finally:
            consumer.close()
        assert received == {f"k{i}".encode(): f"WORD-{i}".encode() for i in range(50)}, log_path.read_text()[
            -2000:
        ]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert worker.returncode is not None
