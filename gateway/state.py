"""The resources one gateway process shares between requests, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.accounts import AccountStore
from gateway.idempotency import IdempotencyRecords
from gateway.jobs import JobView
from gateway.limits import SharedLimits
from gateway.live import TaskEventFanOut
from gateway.metrics import GatewayMetrics
from gateway.publisher import EventPublisher
from gateway.settings import GatewaySettings
from ops.runtime.storage import LocalStore
from schemas.topics import TopicCatalog

RATE_LIMITS = "rate_limits"


@dataclass(frozen=True)
class GatewayState:
    settings: GatewaySettings
    catalog: TopicCatalog
    mongo: Any  # pymongo AsyncMongoClient
    database: Any
    accounts: AccountStore
    limits: SharedLimits
    idempotency: IdempotencyRecords
    jobs: JobView
    publisher: EventPublisher
    store: LocalStore
    metrics: GatewayMetrics
    live: TaskEventFanOut  # task.events pushed to the open progress streams
