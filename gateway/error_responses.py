"""Error responses: every failure rendered as ``{"error": {"code", "message", "field"?}}`` with its status.

The handlers here are the only place errors become responses; routes just raise.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.exceptions import GatewayError, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _reject(request: Request, reason: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.rejections.labels(reason).inc()


async def gateway_error(request: Request, exc: GatewayError) -> Response:
    _reject(request, f"rate_limit_{exc.reason}" if isinstance(exc, RateLimited) else exc.code)
    if exc.status >= 500:
        log.warning("%s path=%s: %s", exc.code, request.url.path, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


async def http_error(request: Request, exc: HTTPException) -> Response:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    _reject(request, code)
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def database_error(request: Request, exc: Exception) -> Response:
    log.warning("mongodb unavailable path=%s: %s", request.url.path, exc)
    _reject(request, "unavailable")
    retry = str(getattr(request.app.state, "retry_after_s", 5))
    return error_response(
        503, "unavailable", "the job store did not answer; retry later", headers={"Retry-After": retry}
    )


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error path=%s", request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    GatewayError: gateway_error,
    HTTPException: http_error,
    PyMongoError: database_error,
    Exception: internal_error,
}
