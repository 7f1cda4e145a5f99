"""``storee webhooks``: the webhook delivery service, the intake and the sender in one process.

The intake (:mod:`streams.webhook_loop`) is a blocking Kafka consumer in a thread of its own; the
sender (:mod:`streams.webhook_send_loop`) is an asyncio loop in the main thread. They share the store,
the metrics and the set of stories whose receiver answered 410. SIGTERM and SIGINT stop both: the
intake commits what it wrote, the sender finishes the attempts under way. Any number of processes
may run: the intake's partitions are shared by the consumer group, the sender's deliveries by leases.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Mapping
from typing import Any

from pymongo import MongoClient

from ops.runtime.kafka import DurableProducer, KafkaUnavailable, make_consumer
from schemas.codec import Codec
from schemas.dlq import dead_letter
from streams.webhook_loop import Intake
from streams.webhook_metrics import WebhookMetrics
from streams.webhook_send_loop import Resolver, Sender, system_resolver
from streams.webhook_settings import WebhookSettings
from streams.webhook_store import WebhookStore

log = logging.getLogger(__name__)

SERVICE = "streams.webhooks"
WEBHOOK_ID_HEADER = "storee.webhook.id"
WEBHOOK_URL_HEADER = "storee.webhook.url"


class WebhookGaveUp(Exception):
    """A webhook's last attempt failed (the dead letter's error class)."""


class WebhookService:
    def __init__(
        self,
        settings: WebhookSettings,
        *,
        metrics: WebhookMetrics | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or WebhookMetrics()
        self.client: MongoClient = MongoClient(settings.mongodb_url, serverSelectionTimeoutMS=10_000)
        self.store = WebhookStore(self.client[settings.mongodb_database])
        self.producer = DurableProducer(settings.bootstrap_servers)
        self.catalog = settings.catalog
        disabled: set[str] = set()
        self.sender = Sender(
            store=self.store,
            schedule=settings.schedule,
            metrics=self.metrics,
            dead_letter=self.dead_letter,
            disabled=disabled,
            allow_private=settings.allow_private,
            connect_timeout_s=settings.connect_timeout_s,
            timeout_s=settings.timeout_s,
            lease_s=settings.lease_s,
            concurrency=settings.concurrency,
            host_concurrency=settings.host_concurrency,
            poll_s=settings.poll_s,
            resolve=resolve,
        )
        self.intake = Intake(
            consumer_factory=lambda: make_consumer(settings.bootstrap_servers, settings.group),
            topic=self.catalog.task_events,
            codec=Codec(),
            store=self.store,
            metrics=self.metrics,
            schedule=settings.schedule,
            disabled=disabled,
            on_new=self.sender.wake,
            progress_interval_ms=settings.progress_interval_ms,
            max_event_age_ms=int(settings.max_event_age_s * 1000),
            view_wait_ms=int(settings.view_wait_s * 1000),
            flush_max=settings.flush_max,
        )

    def dead_letter(self, doc: Mapping[str, Any], reason: str) -> None:
        """Write the give-up to the DLQ and wait for Kafka's acknowledgement.

        The record is the task event the webhook was made of, with the origin of that event, so
        ``storee dlq replay`` puts it back on ``task.events`` and the intake starts a new round.
        """
        source = doc.get("source") or {}
        record = dead_letter(
            topic=str(source.get("topic") or self.catalog.task_events),
            partition=int(source.get("partition") or 0),
            offset=int(source.get("offset") or 0),
            key=str(doc.get("story_id", "")).encode(),
            value=bytes(doc.get("event") or b""),
            headers=[
                (WEBHOOK_ID_HEADER, str(doc["_id"]).encode()),
                (WEBHOOK_URL_HEADER, str(doc.get("url", "")).encode()),
            ],
            error=WebhookGaveUp(f"webhook {doc['_id']} to {doc.get('url')}: {reason}"),
            service=SERVICE,
        )
        try:
            self.producer.produce_sync(self.catalog.dlq, record.value, key=record.key, headers=record.headers)  # type: ignore[arg-type]
        except Exception as exc:
            raise KafkaUnavailable(f"the DLQ did not take the dead letter: {exc}") from exc

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; the intake in a thread, the sender here."""
        intake = threading.Thread(target=self._run_intake, args=(stop,), name="webhook-intake", daemon=True)
        intake.start()
        try:
            self.sender.run_forever(stop)
        finally:
            stop.set()
            intake.join(timeout=30)
            self.producer.close()
            self.client.close()

    def _run_intake(self, stop: threading.Event) -> None:
        try:
            self.intake.run(stop)
        except Exception:
            log.exception("webhook intake crashed; stopping the service")
            stop.set()


def run(args: argparse.Namespace) -> int:
    settings = WebhookSettings.from_env()
    service = WebhookService(settings)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, registry=service.metrics.registry)
        log.info("metrics on port=%d", settings.metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("webhook service starting group=%s topic=%s", settings.group, settings.catalog.task_events)
    service.run(stop)
    return 0
