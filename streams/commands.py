"""``storee streams``: ensure the catalog's topics, then run the stream-processing worker.

``storee webhooks`` runs the webhook delivery service (:mod:`streams.webhook_service`).

The settings are read from the environment once, here; the worker is the Faust app
:func:`streams.app.build_app` builds from them (splitter, batcher, expiry timer, materializer, sweeper).
A variant of the worker (a test's, say) registers this command with its own ``build``. SIGTERM and
SIGINT stop it cleanly: agents finish their current records, offsets are committed, the materializer's
consumer leaves its group.
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ops.runtime.kafka import admin_client
from ops.runtime.provisioning import ensure_topics
from ops.runtime.topic_plan import EnsureReport
from streams.settings import StreamSettings

if TYPE_CHECKING:  # streams.app imports Faust, which ``storee --help`` should not wait for
    from streams.app import StreamApp

# Builds the worker from its settings: streams.app.build_app, unless a variant is passed in.
BuildApp = Callable[[StreamSettings], "StreamApp"]

log = logging.getLogger(__name__)

# How long a starting worker waits for the cluster to take its topic check (one broker of three down).
STARTUP_WAIT_S = 600.0


def register(subparsers: argparse._SubParsersAction, *, build: BuildApp | None = None) -> None:
    parser = subparsers.add_parser(
        "streams",
        help="run the stream processors (split, batch, expire, materialize the job view)",
        description="Ensure the topic catalog exists, then run the Faust worker with the splitter, batcher "
        "and materializer. Configured by the environment: KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL, "
        "TOPIC_PREFIX, GPU_POOLS, BATCH_SIZE, BATCH_TIMEOUT, TASK_TTL, MAX_SCENES, STREAMS_METRICS_PORT, ...",
    )
    parser.add_argument("--skip-topics", action="store_true", help="do not create missing catalog topics")
    parser.add_argument("--loglevel", default="info", help="Faust worker log level (default: info)")
    parser.set_defaults(handler=functools.partial(run, build=build))
    webhooks = subparsers.add_parser(
        "webhooks",
        help="run the webhook delivery service (signed, retried, every attempt recorded)",
        description="Read task.events in its own consumer group, write a delivery per webhook a story "
        "asked for, and send them signed (Standard Webhooks) with retries over hours. Configured by the "
        "environment: KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL, TOPIC_PREFIX, WEBHOOK_RETRY_SCHEDULE, "
        "WEBHOOK_TIMEOUT, WEBHOOK_CONCURRENCY, WEBHOOK_HOST_CONCURRENCY, WEBHOOK_ALLOW_PRIVATE, ...",
    )
    webhooks.set_defaults(handler=run_webhooks)


def run_webhooks(args: argparse.Namespace) -> int:
    from streams.webhook_service import run as run_service  # pymongo and httpx only when it runs

    return run_service(args)


def _ensure_topics_waiting(settings: StreamSettings, budget_s: float = STARTUP_WAIT_S) -> EnsureReport:
    """Ensure the catalog's topics, waiting out a broker that is down (backoff up to 30 s) rather than
    exiting for the supervisor to restart us into the same outage; give up after ``budget_s``."""
    deadline = time.monotonic() + budget_s
    delay = 1.0
    while True:
        try:
            return ensure_topics(admin_client(settings.bootstrap_servers), settings.catalog)
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("cannot ensure topics yet (%s); retrying in %.0fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def run(args: argparse.Namespace, *, build: BuildApp | None = None) -> int:
    settings = StreamSettings.from_env()
    if not args.skip_topics:
        report = _ensure_topics_waiting(settings)
        for drift in report.drift:
            log.warning("topic drift: %s", drift)
        log.info("topics created=%d matched=%d", len(report.created), len(report.matched))
    import faust

    from streams.app import build_app

    stream_app = (build or build_app)(settings)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, registry=stream_app.metrics.registry)
        log.info("metrics on port=%d", settings.metrics_port)
    worker = faust.Worker(stream_app.app, loglevel=args.loglevel)
    # At WARN and above Faust's terminal spinner sets the root logger to DEBUG, so every library formats
    # every debug record (a tenth of the worker's time in a profile). We never want the spinner.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
