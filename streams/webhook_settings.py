"""Settings of the webhook delivery service (``storee webhooks``), read once from the environment.

The retry schedule (``WEBHOOK_RETRY_SCHEDULE``) and its jitter are :mod:`streams.webhook_schedule`'s;
the connect and total timeouts bound one attempt; a claimed delivery is leased for ``WEBHOOK_LEASE``
seconds, which must outlast the total timeout, so a sender that dies mid-attempt hands the delivery to
the next one once the lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.runtime.config import ConnectionSettings, Env
from ops.runtime.exceptions import ConfigError
from schemas.topics import TopicCatalog
from streams.webhook_events import PROGRESS_INTERVAL_MS
from streams.webhook_schedule import DEFAULT_JITTER, DEFAULT_SCHEDULE, RetrySchedule, parse_schedule


@dataclass(frozen=True)
class WebhookSettings:
    connection: ConnectionSettings
    bootstrap_servers: str
    mongodb_url: str
    group: str  # the intake's consumer group on task.events
    schedule: RetrySchedule
    allow_private: bool  # WEBHOOK_ALLOW_PRIVATE: loopback and private targets too (tests, local use)
    connect_timeout_s: float
    timeout_s: float  # one attempt, from connect to the response's status line
    lease_s: float
    concurrency: int  # attempts in flight in this process
    host_concurrency: int  # attempts in flight to one target host
    poll_s: float  # how often the sender looks for due retries (new webhooks wake it at once)
    progress_interval_ms: int
    max_event_age_s: float  # older events seen for the first time are recorded as skipped, not sent
    view_wait_s: float  # how long an event may wait for its story to reach the job view
    flush_max: int
    metrics_port: int

    @property
    def catalog(self) -> TopicCatalog:
        return TopicCatalog.build(prefix=self.connection.topic_prefix)  # task.events and the DLQ only

    @property
    def mongodb_database(self) -> str:
        return self.connection.mongodb_database

    @classmethod
    def from_env(cls, env: Env | None = None) -> WebhookSettings:
        env = env or Env()
        connection = ConnectionSettings.from_env(env)
        text = env.str("WEBHOOK_RETRY_SCHEDULE", DEFAULT_SCHEDULE)
        try:
            schedule = RetrySchedule(
                parse_schedule(text), jitter=env.float("WEBHOOK_RETRY_JITTER", DEFAULT_JITTER, minimum=0.0)
            )
        except ValueError as exc:
            raise ConfigError(f"WEBHOOK_RETRY_SCHEDULE / WEBHOOK_RETRY_JITTER: {exc}") from None
        timeout = env.float("WEBHOOK_TIMEOUT", 15.0, minimum=0.1)
        lease = env.float("WEBHOOK_LEASE", max(60.0, 2 * timeout), minimum=1.0)
        if lease <= timeout:
            raise ConfigError(
                f"WEBHOOK_LEASE ({lease:g}s) must be longer than WEBHOOK_TIMEOUT ({timeout:g}s)"
            )
        return cls(
            connection=connection,
            bootstrap_servers=connection.kafka(),
            mongodb_url=str(connection.mongodb()),
            group=env.str("WEBHOOK_GROUP", f"{connection.topic_prefix}webhooks"),
            schedule=schedule,
            allow_private=env.bool("WEBHOOK_ALLOW_PRIVATE", False),
            connect_timeout_s=env.float("WEBHOOK_CONNECT_TIMEOUT", 5.0, minimum=0.05),
            timeout_s=timeout,
            lease_s=lease,
            concurrency=env.int("WEBHOOK_CONCURRENCY", 64, minimum=1, maximum=10_000),
            host_concurrency=env.int("WEBHOOK_HOST_CONCURRENCY", 8, minimum=1, maximum=10_000),
            poll_s=env.float("WEBHOOK_POLL_INTERVAL", 1.0, minimum=0.01),
            progress_interval_ms=env.int("WEBHOOK_PROGRESS_INTERVAL_MS", PROGRESS_INTERVAL_MS, minimum=0),
            max_event_age_s=env.float("WEBHOOK_MAX_EVENT_AGE", 24 * 3600.0, minimum=1.0),
            view_wait_s=env.float("WEBHOOK_VIEW_WAIT", 3600.0, minimum=0.0),
            flush_max=env.int("WEBHOOK_FLUSH_MAX", 2000, minimum=1),
            metrics_port=env.int("WEBHOOK_METRICS_PORT", 0, minimum=0, maximum=65535),
        )
