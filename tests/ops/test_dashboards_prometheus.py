"""The dashboard against a real Prometheus scraping the running system.

A real Prometheus (Debian's package: ``ops/install-test-tools.sh``, run by ``make test``) on a free
loopback port scrapes the running system every second (the lag exporter, ``storee lag serve``, and the
gateway's, streams worker's and GPU consumer's metrics), and every panel's query and every template
variable, run through its HTTP API, returns data. The dashboard and rules are read through the helpers
in ``test_dashboards.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ops.bench.system_under_test import PARAMS, Harness, started_system
from ops.runtime.kafka import DurableProducer
from tests.ops.test_dashboards import (
    SCRAPED_JOBS,
    as_sent,
    dashboard,
    loopback_config,
    panel_queries,
    rule_queries,
    variable_queries,
)
from tests.waiting import wait_for

# -- a real Prometheus scraping the running system ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("prometheus is missing: run ops/install-test-tools.sh (make test does)")
    return path


class Prometheus:
    """A real Prometheus server on loopback: its HTTP API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=5.0)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.http.get("/api/v1/query", params={"query": expr}).raise_for_status().json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def label_values(self, label: str, metric: str) -> list[str]:
        body = self.http.get(f"/api/v1/label/{label}/values", params={"match[]": metric}).json()
        return body["data"]

    def targets(self) -> dict[str, str]:
        active = self.http.get("/api/v1/targets").json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    def rules(self) -> list[dict[str, Any]]:
        groups = self.http.get("/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


@contextmanager
def prometheus_scraping(binary: str, root: Path, ports: dict[str, int]) -> Iterator[Prometheus]:
    """Run ``prometheus`` on a free loopback port with :func:`loopback_config`; stop it after."""
    own = _free_port()
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump(loopback_config(ports, own)))
    log = (root / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{own}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{own}")
    try:

        def ready() -> bool:
            assert process.poll() is None, (root / "prometheus.log").read_text()
            try:
                return server.http.get("/-/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 20, "Prometheus to be ready")
        yield server
    finally:
        server.http.close()
        _stop(process)
        log.close()


@contextmanager
def lag_exporter(h: Harness, port: int, root: Path) -> Iterator[None]:
    """``storee lag serve`` on ``port`` for the system's groups, observing every second, probing every 2."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": h.bootstrap,
        "TOPIC_PREFIX": h.catalog.prefix,
        "LAG_PROBE_INTERVAL_S": "2",  # the probe panels need probes that went through
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "ops.cli", "lag", "serve", "--port", str(port), "--sample-interval", "1"]
    log = (root / "lag-exporter.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        _stop(process)
        log.close()


def _submit(h: Harness, tier: str) -> str:
    body = {
        "title": f"dashboard {tier}",
        "task_type": "text_to_video",
        "model": "default",
        "params": PARAMS,
        "scenes": [{"prompt": f"a {tier} lighthouse at dusk"}],
    }
    response = h.http.post("/v1/stories", json=body, headers=h.auth(tier))
    assert response.status_code == 202, response.text
    return response.json()["story_id"]


# Series that exist only once something happened: the second round of work shows in their rates.
FIRST_SEEN = (
    "storee_gpu_batches_total",
    "storee_gpu_queue_wait_seconds_bucket",
    "storee_streams_dlq_total",
    "storee_gpu_records_refused_total",
)


def _probes_through(prometheus: Prometheus) -> bool:
    counts = prometheus.query('sum by (tier) (storee_probe_latency_seconds_count{stage="view"})')
    return len(counts) == 2 and all(float(sample["value"][1]) >= 2 for sample in counts)


def _work_round(h: Harness) -> None:
    stories = [_submit(h, tier) for tier in ("premium", "free")]
    producer = DurableProducer(h.bootstrap)
    try:
        producer.produce_sync(h.catalog.stories_submitted, b"not a storee event", key="poison")
        batches = h.catalog.batches(h.system.settings.pool, "free")
        producer.produce_sync(batches, b"not a batch", key="poison")
    finally:
        producer.close()

    def completed() -> bool:
        return all((h.db["stories"].find_one({"_id": s}) or {}).get("status") == "completed" for s in stories)

    wait_for(completed, 60, f"stories {stories} to complete")


def _all_have_data(prometheus: Prometheus, queries: list[tuple[str, str]]) -> bool:
    return not _without_data(prometheus, queries)


def _without_data(prometheus: Prometheus, queries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The queries whose result is empty or only NaN (a quantile over no observations)."""
    return [
        (where, expr)
        for where, expr in queries
        if not any(sample["value"][1] != "NaN" for sample in prometheus.query(expr))
    ]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_panel_query_returns_data_from_a_prometheus_scraping_the_system(
    local_stack, prometheus_binary: str, tmp_path: Path
):
    board = dashboard()
    ports = {job: _free_port() for job in SCRAPED_JOBS}
    service_ports = {
        "STREAMS_METRICS_PORT": str(ports["storee-streams"]),
        "METRICS_PORT": str(ports["storee-gpu-consumers"]),
        # The exporter under test is `storee lag serve` (what compose runs), not the one `storee up`
        # would serve on 9308 beside whatever else runs here.
        "LAG_EXPORTER_PORT": "0",
    }
    with started_system(tmp_path, local_stack.mongodb_url, extra_env=service_ports) as h:
        ports["storee-gateway"] = h.system.settings.gateway_port
        with (
            lag_exporter(h, ports["storee-lag"], tmp_path),
            prometheus_scraping(prometheus_binary, tmp_path, ports) as prometheus,
        ):
            # 1. Prometheus scrapes every target.
            def all_up() -> bool:
                health = prometheus.targets()
                return all(health.get(job) == "up" for job in (*SCRAPED_JOBS, "prometheus"))

            wait_for(all_up, 20, f"every scrape target up ({ports})")

            # 2. Work for every panel, twice: a story per tier through the GPU consumer, a record the
            #    splitter and one the GPU consumer cannot read (the dead letters). A labelled series
            #    appears at its first increment, which rate() cannot see; the second round it can.
            _work_round(h)
            wait_for(lambda: all(map(prometheus.query, FIRST_SEEN)), 10, f"Prometheus to have {FIRST_SEEN}")
            _work_round(h)
            # The probe panels need two probes of each tier through every stage (a rate of their times).
            wait_for(lambda: _probes_through(prometheus), 90, "two probes of each tier through the pipeline")

            # 3. Every panel's query, as Grafana sends it, returns data: with "All" selected, and with
            #    one value of each variable (a matcher on a label the series lack matches "All" too).
            values = {
                name: prometheus.label_values(label, metric)
                for name, metric, label in variable_queries(board)
            }
            assert all(values.values()), f"variables without values: {values}"
            for chosen in ({}, {name: found[0] for name, found in values.items()}):
                queries = [(where, as_sent(expr, board, chosen)) for where, expr in panel_queries(board)]
                try:
                    wait_for(partial(_all_have_data, prometheus, queries), 20, "every panel's data")
                except AssertionError:
                    pytest.fail(
                        f"panels without data ({chosen or 'All'}): {_without_data(prometheus, queries)}"
                    )

            # 4. The alert rules evaluate without errors on the real series.
            rules = prometheus.rules()
            assert {rule["name"] for rule in rules} == {name for name, _ in rule_queries()}
            broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
            assert not broken, broken
