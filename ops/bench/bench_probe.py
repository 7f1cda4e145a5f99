"""The end-to-end probe's overhead on the pipeline: users' story latency with the probe off and on.

Starts the whole system (gateway, streams worker, one GPU consumer; the ``default`` pool on the
simulated backend, ``--render-s`` per batch, so the figures are the pipeline's own and not a render's
noise) on its own topics and database. Then runs ``--rounds`` pairs of rounds, off and on interleaved
(the order alternating, so drift favours neither): each round submits ``--stories`` one-scene user
stories over HTTP (tiers alternating, ``--pace`` seconds apart) and waits for all of them in the job
view; in an "on" round a prober (the same :class:`~ops.lag.prober.ProbeLoop` the exporter runs) probes
both tiers every ``--probe-interval`` seconds. Prints, per mode, the median and p90 of the users'
submitted_at -> finished_at latency (from the view) and the ratio on/off, and the probe's own
end-to-end median::

    .venv/bin/python -m ops.bench.bench_probe --rounds 3 --stories 12

Bounded: each round gives up after ``--timeout`` seconds, and everything started is stopped.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from ops.bench.system_under_test import PARAMS, Harness, started_system
from ops.lag.groups import storee_groups
from ops.lag.probe import probe_target
from ops.lag.prober import ProbeLoop, ProbeMetrics, Prober
from ops.runtime.config import Env
from ops.stack import local_mongodb_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of off/on rounds")
    parser.add_argument("--stories", type=int, default=12, help="user stories per round")
    parser.add_argument("--pace", type=float, default=0.25, help="seconds between user submissions")
    parser.add_argument("--probe-interval", type=float, default=1.0, help="seconds between probe rounds")
    parser.add_argument("--render-s", type=float, default=0.2, help="simulated seconds per batch")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds a round may take")
    args = parser.parse_args()
    pools = f'{{"default": {{"pipeline": "simulated", "simulated_seconds": {args.render_s}}}}}'
    latencies: dict[str, list[float]] = {"off": [], "on": []}
    probe_e2e: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        started_system(Path(tmp), local_mongodb_url(), extra_env={"GPU_POOLS": pools}) as h,
    ):
        env = Env({"TOPIC_PREFIX": h.catalog.prefix})
        target = probe_target(storee_groups(env), "default")
        if target is None:
            raise SystemExit("the default pool's stages are not known")
        _round(h, args, "warm-up", 4)  # first batches pay for connections and caches
        order = [("off", "on") if i % 2 == 0 else ("on", "off") for i in range(args.rounds)]
        for index, pair in enumerate(order):
            for mode in pair:
                loop = None
                if mode == "on":
                    prober = Prober(h.bootstrap, target, timeout_s=30.0)
                    loop = ProbeLoop(prober, ProbeMetrics(CollectorRegistry()), args.probe_interval)
                    loop.start()
                try:
                    got = _round(h, args, f"{index}-{mode}", args.stories)
                finally:
                    if loop is not None:
                        loop.stop()
                        probe_e2e += [r.seconds["view"] for r in loop.last.values() if r.done]
                latencies[mode] += got
                print(f"round {index} {mode:>3}: median {statistics.median(got):.3f}s over {len(got)}")
    print()
    for mode, values in latencies.items():
        print(f"probe {mode:>3}: users' latency median {statistics.median(values):.3f}s "
              f"p90 {_quantile(values, 0.9):.3f}s (n={len(values)})")  # fmt: skip
    ratio = statistics.median(latencies["on"]) / statistics.median(latencies["off"])
    print(f"ratio on/off (median): {ratio:.3f}")
    if probe_e2e:
        print(
            f"probe end to end (to the view), median of the rounds' last: {statistics.median(probe_e2e):.3f}s"
        )


def _round(h: Harness, args: argparse.Namespace, label: str, count: int) -> list[float]:
    """Submit ``count`` one-scene stories and return their latencies (seconds) from the job view."""
    ids = []
    for i in range(count):
        tier = "premium" if i % 2 == 0 else "free"
        body = {
            "title": f"bench-probe {label} {i}",
            "task_type": "text_to_video",
            "model": "default",
            "params": PARAMS,
            "scenes": [{"prompt": f"{label} story {i}"}],
        }
        response = h.http.post("/v1/stories", json=body, headers=h.auth(tier))
        response.raise_for_status()
        ids.append(response.json()["story_id"])
        time.sleep(args.pace)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        docs = list(
            h.db["stories"].find({"_id": {"$in": ids}}, {"status": 1, "submitted_at": 1, "finished_at": 1})
        )
        if len(docs) == len(ids) and all(d.get("finished_at") for d in docs):
            return [(d["finished_at"] - d["submitted_at"]) / 1000 for d in docs]
        time.sleep(0.2)
    raise SystemExit(f"round {label}: not every story finished within {args.timeout}s")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    main()
