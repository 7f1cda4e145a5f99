"""Prometheus metrics of the webhook delivery service, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
OUTCOMES = ("delivered", "retry", "gave_up", "gone", "refused")
KINDS = ("started", "progress", "completed")


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "storee_webhooks_events_in", "task.events records read by the intake", registry=r
        )
        self.queued = Counter(
            "storee_webhooks_queued",
            "Deliveries written (new webhooks to send), by kind",
            ["kind"],
            registry=r,
        )
        self.skipped = Counter(
            "storee_webhooks_skipped", "Webhooks not sent, by reason", ["reason"], registry=r
        )
        self.attempts = Counter(
            "storee_webhooks_attempts", "Delivery attempts, by outcome", ["outcome"], registry=r
        )
        self.attempt_seconds = Histogram(
            "storee_webhooks_attempt_seconds",
            "One attempt, connect to status line",
            buckets=_SECONDS,
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "storee_webhooks_delivery_seconds",
            "From the event's time to the receiver's 2xx, by kind",
            ["kind"],
            buckets=_SECONDS,
            registry=r,
        )
        self.in_flight = Gauge("storee_webhooks_in_flight", "Attempts in flight", registry=r)
        self.dead_letters = Counter(
            "storee_webhooks_dead_letters", "Deliveries given up and sent to the DLQ", registry=r
        )
        self.waiting = Gauge(
            "storee_webhooks_waiting_for_dependency",
            "1 while a loop waits out Kafka, MongoDB or the job view",
            ["loop"],
            registry=r,
        )
        for outcome in OUTCOMES:
            self.attempts.labels(outcome)
        for kind in KINDS:
            self.queued.labels(kind)
            self.delivery_seconds.labels(kind)
        for loop in ("intake", "sender"):
            self.waiting.labels(loop)
