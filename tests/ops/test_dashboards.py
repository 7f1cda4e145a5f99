"""The Grafana dashboard and the Prometheus alert rules, checked by what reads them.

The dashboard's JSON is well formed (every panel queries the Prometheus datasource variable), every
metric name its queries and the alert rules use is one the code exports (read from the source, so a
renamed metric fails here), and promtool accepts the rules, their unit tests and the compose config.
A real Prometheus scraping the running system is ``test_dashboards_prometheus.py``; both read the
dashboard and the rules through the helpers here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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


# -- the configuration a test Prometheus runs with -------------------------------------------------

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
