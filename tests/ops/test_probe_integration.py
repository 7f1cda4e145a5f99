"""The end-to-end probe on the whole running system: ``storee up``'s exporter probes both tiers through
the real path, every stage is measured in order, and the job view never holds the probe."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.bench.system_under_test import started_system
from ops.lag.probe import STAGES
from schemas.ids import PROBE_ACCOUNT, PROBE_STORY_PREFIX
from schemas.records import Tier
from schemas.view import STORIES, TASKS

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _histogram(url: str) -> dict[tuple[str, str, str], float]:
    """(series, stage, tier) -> value of the probe histogram's _count and _sum samples."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "storee_probe_latency_seconds":
            for sample in family.samples:
                if sample.name.endswith(("_count", "_sum")):
                    found[(sample.name.rsplit("_", 1)[1], sample.labels["stage"], sample.labels["tier"])] = (
                        sample.value
                    )
    return found


def test_probes_of_both_tiers_measure_every_stage_in_order_and_stay_out_of_the_view(local_stack, tmp_path):
    env = {
        "LAG_EXPORTER_PORT": str(_free_port()),
        "LAG_PROBE_INTERVAL_S": "2",
        "LAG_PROBE_TIMEOUT_S": "30",
        "LAG_SAMPLE_INTERVAL_S": "2",
    }
    with started_system(tmp_path, local_stack.mongodb_url, extra_env=env) as h:
        service = h.system.lag
        assert service is not None and service.prober is not None, "storee up starts the prober"
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            counts = _histogram(service.url)
            if all(counts.get(("count", "view", tier.value), 0) >= 1 for tier in Tier):
                break
            time.sleep(0.5)
        last = dict(service.prober.last)
        counts = _histogram(service.url)
        assert all(counts.get(("count", "view", t.value), 0) >= 1 for t in Tier), (counts, last)
        for tier in Tier:
            result = last[tier]
            assert result.done and result.story_id.startswith(PROBE_STORY_PREFIX)
            seconds = [result.seconds[stage] for stage in STAGES]
            assert all(s >= 0 for s in seconds) and seconds[-1] > 0, seconds
            assert seconds == sorted(seconds), f"stages out of order for {tier}: {result.seconds}"
            # Every stage counted the same probes, and their sums keep the order too.
            assert len({counts[("count", stage, tier.value)] for stage in STAGES}) == 1
            sums = [counts[("sum", stage, tier.value)] for stage in STAGES]
            assert sums == sorted(sums)
        text = httpx.get(f"{service.url}/metrics", timeout=5).text
        assert 'storee_probe_timeouts_total{tier="premium"}' in text
        assert "storee_probe_last_success_timestamp_seconds" in text
        for collection in (STORIES, TASKS):
            assert h.db[collection].count_documents({"account_id": PROBE_ACCOUNT}) == 0
            assert h.db[collection].count_documents({"_id": {"$regex": f"^{PROBE_STORY_PREFIX}"}}) == 0
