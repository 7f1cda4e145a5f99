"""The gateway's Prometheus metrics, in a registry of their own (one per app, so tests can build several).

Each process exports its own figures; with several uvicorn workers a scrape reaches one of them, so
scrape each instance (run one worker per container) or aggregate with the client's multiprocess mode.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "storee_gateway_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "storee_gateway_request_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.publish_latency = Histogram(
            "storee_gateway_publish_seconds",
            "Time from produce to Kafka's acknowledgement",
            ["event"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejections = Counter(
            "storee_gateway_rejections",
            "Requests refused, by reason",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every request by its route template (``/v1/stories/{story_id}``), not its path."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route, scope["method"]).observe(time.perf_counter() - started)


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    # Unmatched paths share one label: client-chosen paths must not grow the metric's cardinality.
    return getattr(route, "path", None) or "unmatched"
