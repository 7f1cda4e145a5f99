"""The Grafana dashboard and the Prometheus alert rules, checked by what reads them.

Fast: the dashboard's JSON is well formed (every panel queries the Prometheus datasource variable), every
metric name its queries and the alert rules use is one the code exports (read from the source, so a
renamed metric fails here), and promtool accepts the rules, their unit tests and the compose config.

Integration: a real Prometheus (Debian's package: ``ops/install-test-tools.sh``, run by ``make test``)
on a free loopback port scrapes the running system every second (the lag exporter, ``storee lag serve``,
and the gateway's, streams worker's and GPU consumer's metrics), and every panel's query and every
template variable, run through its HTTP API, returns data.
"""

from __future__ import annotations

import json
import os
import re
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
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops/dashboards/storee-lag.json"
PROMETHEUS_DIR = ROOT / "ops/prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
# Where the metrics are defined: the services' registries and the lag exporter's collector.
METRIC_SOURCES = ("gateway", "streams", "gpu_consumers", "ops/lag")
PROMETHEUS_OWN = {"up"}
# What Grafana puts in place of its variables; the test runs the queries as Grafana would send them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
ALL = ".*"  # the dashboard's allValue: "All" selected

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_OPERATORS = {"and", "or", "unless", "bool", "offset"}


# -- what the dashboard and the rules query ----------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows left out, panels inside collapsed rows included)."""
    found = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title and refId, PromQL) for every target of every panel."""
    return [(f"{p['title']} [{t['refId']}]", t["expr"]) for p in panels(board) for t in p["targets"]]


def rule_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def variable_queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, metric, label) of each ``label_values(metric, label)`` template variable."""
    out = []
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
            assert match, f"variable {variable['name']}: not a label_values query"
            out.append((variable["name"], match[1], match[2]))
    return out


def as_sent(expr: str, board: dict[str, Any], chosen: dict[str, str] | None = None) -> str:
    """The query with Grafana's variables replaced: built-ins by their usual values, ours by the
    ``chosen`` value or, by default, "All"."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            value = (chosen or {}).get(variable["name"]) or variable.get("allValue") or ALL
            expr = re.sub(rf"\$\{{?{variable['name']}\}}?\b", value, expr)
    assert "$" not in expr, f"unreplaced variable in {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, durations left out)."""
    bare = _GROUPING.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub(" ", expr))))
    names = set()
    for match in _IDENTIFIER.finditer(bare):
        if bare[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match[0] not in _OPERATORS:
            names.add(match[0])
    return names


def defined_metrics() -> str:
    return "\n".join(
        path.read_text() for source in METRIC_SOURCES for path in sorted((ROOT / source).rglob("*.py"))
    )


def is_defined(name: str, sources: str) -> bool:
    """Whether the code exports ``name``: a metric of that name, or the counter or histogram behind it."""
    if name in PROMETHEUS_OWN:
        return True
    if f'"{name}"' in sources:
        # A counter is exported only as <name>_total.
        return not re.search(rf'\b(?:Counter|CounterMetricFamily)\(\s*"{re.escape(name)}"', sources)
    families = {
        "_total": "Counter|CounterMetricFamily",
        "_bucket": "Histogram|HistogramMetricFamily",
        "_count": "Histogram|HistogramMetricFamily|Summary|SummaryMetricFamily",
        "_sum": "Histogram|HistogramMetricFamily|Summary|SummaryMetricFamily",
    }
    for suffix, kinds in families.items():
        base = name.removesuffix(suffix)
        if base != name and re.search(rf'\b(?:{kinds})\(\s*"{re.escape(base)}"', sources):
            return True
    return False


# -- fast checks -------------------------------------------------------------------------------------


def test_the_dashboard_is_grafana_json_on_the_prometheus_variable():
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] == "storee-lag"
    datasource = next(v for v in board["templating"]["list"] if v["type"] == "datasource")
    assert datasource["query"] == "prometheus"
    reference = {"type": "prometheus", "uid": f"${{{datasource['name']}}}"}
    ids = [p["id"] for p in board["panels"]] + [p["id"] for p in panels(board) if p not in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board):
        title = panel["title"]
        assert panel["targets"], f"{title}: no query"
        assert panel["datasource"] == reference, title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{title}: refIds repeat"
        for target in panel["targets"]:
            assert target["datasource"] == reference, title
            assert target["expr"].strip(), f"{title}: empty query"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{title}: wider than the grid"


def test_the_dashboard_shows_what_the_issue_asks_for():
    queries = " ".join(expr for _, expr in panel_queries(dashboard()))
    for metric in (
        "kafka_consumergroup_lag_sum",
        "kafka_consumergroup_lag_seconds_max",
        "storee_consumergroup_status",
        "storee_stage_wait_seconds",
        "storee_gpu_tasks_total",
        "storee_gpu_batches_total",
        "storee_gpu_busy_ratio",
        "storee_streams_dlq_total",
    ):
        assert metric in queries, f"no panel shows {metric}"


def test_every_metric_queried_is_one_the_code_exports():
    sources = defined_metrics()
    board = dashboard()
    used = panel_queries(board) + rule_queries()
    used += [(f"variable {name}", metric) for name, metric, _ in variable_queries(board)]
    unknown = {
        f"{where}: {name}"
        for where, expr in used
        for name in metric_names(expr)
        if not is_defined(name, sources)
    }
    assert not unknown, f"metrics nobody exports: {sorted(unknown)}"


def test_metric_names_are_read_from_promql():
    expr = (
        'sum by (le, tier) (rate(a_bucket{tier=~"$tier", x="y(z)"}[$__rate_interval])) or vector(0) + on(x) b'
    )
    assert metric_names(expr) == {"a_bucket", "b"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run ops/install-test-tools.sh (make test does)")
    return path


def test_promtool_accepts_the_alert_rules():
    result = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_fire_on_the_series_they_are_for():
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"], capture_output=True, text=True, cwd=PROMETHEUS_DIR
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_compose_config_and_the_test_config(tmp_path: Path):
    ports = {job: 1 for job in SCRAPED_JOBS}
    generated = tmp_path / "prometheus.yml"
    generated.write_text(yaml.safe_dump(loopback_config(ports, 9)))
    for config in (PROMETHEUS_DIR / "prometheus.yml", generated):
        result = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


# -- a real Prometheus scraping the running system ---------------------------------------------------

SCRAPED_JOBS = ("storee-lag", "storee-gateway", "storee-streams", "storee-gpu-consumers")


def loopback_config(ports: dict[str, int], own_port: int) -> dict[str, Any]:
    """The compose config with every job's targets on loopback ports, scraped and evaluated every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
    config["rule_files"] = [str(ALERTS)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(SCRAPED_JOBS) <= set(jobs), f"compose config lacks {set(SCRAPED_JOBS) - set(jobs)}"
    for name, job in jobs.items():
        port = own_port if name == "prometheus" else ports[name]
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return config


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
    """``storee lag serve`` on ``port`` for the system's groups, observing every second."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": h.bootstrap,
        "TOPIC_PREFIX": h.catalog.prefix,
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
