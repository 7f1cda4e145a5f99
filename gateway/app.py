"""The gateway app: ``create_app(settings)`` composes routes, middleware and a lifespan explicitly.

The routes, and the OpenAPI document served at ``/openapi.json``, both come from the one route table,
``gateway.routes.table``.

Each process (uvicorn worker) builds its own MongoDB client, Kafka producer and limit leases in the
lifespan; everything that must agree across processes (API keys, limits, idempotency records) lives in
MongoDB, so any number of workers and instances can serve side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.accounts import AccountStore
from gateway.body_limit import BodyLimitMiddleware
from gateway.error_responses import EXCEPTION_HANDLERS
from gateway.idempotency import IdempotencyRecords
from gateway.jobs import JobView
from gateway.limits import SharedLimits
from gateway.live import TaskEventFanOut
from gateway.metrics import GatewayMetrics, MetricsMiddleware
from gateway.openapi import openapi_document
from gateway.publisher import EventPublisher
from gateway.routes.table import OPERATIONS
from gateway.settings import GatewaySettings
from gateway.state import RATE_LIMITS, GatewayState
from gateway.story_publishing import lease_seconds
from ops.runtime.storage import LocalStore

log = logging.getLogger(__name__)

PURGE_EVERY_S = 60.0
_MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: GatewaySettings, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The gateway as an ASGI app; ``clock`` drives the rate limits and the expiry of Idempotency-Keys
    (tests pass a fake one)."""
    metrics = GatewayMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        mongo: AsyncMongoClient = AsyncMongoClient(
            str(settings.mongodb_url), serverSelectionTimeoutMS=5_000, tz_aware=True
        )
        database = mongo[settings.mongodb_database]
        publisher = EventPublisher(settings.kafka_bootstrap_servers, timeout_s=settings.publish_timeout_s)
        publisher.start()
        live = TaskEventFanOut(
            settings.kafka_bootstrap_servers, settings.catalog.task_events, queue_size=settings.sse_queue_size
        )
        live.start()
        state = GatewayState(
            settings=settings,
            catalog=settings.catalog,
            mongo=mongo,
            database=database,
            accounts=AccountStore(database, cache_ttl_s=settings.api_key_cache_ttl_s),
            limits=SharedLimits(
                database[RATE_LIMITS],
                user_per_minute=settings.user_limit_per_minute,
                account_per_minute=settings.account_rate_per_minute,
                account_burst=settings.account_burst,
                lease_max=settings.limit_lease_max,
                clock=clock,
            ),
            idempotency=IdempotencyRecords(
                database,
                ttl_s=settings.idempotency_ttl_s,
                lease_s=lease_seconds(settings.publish_timeout_s),
                clock=clock,
            ),
            jobs=JobView(database),
            publisher=publisher,
            store=LocalStore(settings.output_dir),
            metrics=metrics,
            live=live,
        )
        try:
            await state.limits.prepare()
        except PyMongoError as exc:  # serve anyway: readyz reports MongoDB, requests answer 503
            log.warning("could not create rate-limit indexes: %s", exc)
        app.state.gateway = state
        app.state.retry_after_s = settings.unavailable_retry_after_s
        purger = asyncio.create_task(_purge_forever(state))
        log.info(
            "gateway ready kafka=%s database=%s prefix=%s pools=%s",
            settings.kafka_bootstrap_servers,
            settings.mongodb_database,
            settings.topic_prefix,
            ",".join(settings.pools),
        )
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await live.stop()
            await asyncio.to_thread(publisher.close, settings.publish_timeout_s)
            await mongo.close()

    app = Starlette(
        routes=[operation.route() for operation in OPERATIONS],
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(
                BodyLimitMiddleware,
                default=settings.max_body_bytes,
                caps={"/v1/jobs": settings.max_image_bytes + settings.max_body_bytes + _MULTIPART_OVERHEAD},
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.openapi = openapi_document(settings)
    return app


def app_from_env() -> Starlette:
    """The uvicorn factory (``--factory``): each worker reads the environment and builds its app."""
    return create_app(GatewaySettings.from_env())


async def _purge_forever(state: GatewayState) -> None:
    """Delete expired limit and idempotency documents; the server has no TTL indexes to do it."""
    while True:
        await asyncio.sleep(PURGE_EVERY_S)
        try:
            removed = await state.limits.purge() + await state.idempotency.purge()
            if removed:
                log.debug("purged expired documents count=%d", removed)
        except PyMongoError as exc:
            log.warning("purge failed: %s", exc)
