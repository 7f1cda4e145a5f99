"""Endpoints for operators and other services: health, readiness, metrics, schemas, the OpenAPI document."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.state import GatewayState
from schemas.registry import list_schemas

_READY_TIMEOUT_S = 2.0


async def healthz(request: Request) -> JSONResponse:
    """The process is alive (it checks nothing else)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Kafka and MongoDB both answer: 200, else 503 naming what does not."""
    state: GatewayState = request.app.state.gateway
    kafka, mongodb = await asyncio.gather(
        asyncio.to_thread(state.publisher.reachable, _READY_TIMEOUT_S), _mongodb_reachable(state)
    )
    checks = {"kafka": "ok" if kafka else "unreachable", "mongodb": "ok" if mongodb else "unreachable"}
    ready = kafka and mongodb
    headers = None if ready else {"Retry-After": str(state.settings.unavailable_retry_after_s)}
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=headers,
    )


async def _mongodb_reachable(state: GatewayState) -> bool:
    try:
        await asyncio.wait_for(state.database.command("ping"), _READY_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    return True


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    state: GatewayState = request.app.state.gateway
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


async def schemas(request: Request) -> JSONResponse:
    """Every Avro event schema with its fingerprint (``?history=true`` adds older writer schemas)."""
    history = request.query_params.get("history", "false").lower() in ("1", "true", "yes")
    return JSONResponse({"schemas": list_schemas(include_history=history)})


async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document the app was built with (``gateway.openapi``, from the route table)."""
    return JSONResponse(request.app.state.openapi)
